"""One JSON error shape for every 4xx of the API.

    {"error": {"code": "not_found", "message": "Workspace not found.", "fields": {}}}

`fields` maps a field name to its messages; it is empty when no single field is at fault.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.fields import get_error_detail
from rest_framework.views import exception_handler as drf_exception_handler

from studio.storage_errors import ObjectStoreError


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A stable, machine-readable code, e.g. `not_found`.")
    message = serializers.CharField(help_text="What was wrong, for a person to read.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per field at fault (empty when no single field is at fault).",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in _flatten(v)]
    if isinstance(detail, (list, tuple)):
        return [m for item in detail for m in _flatten(item)]
    return [str(detail)]


def _field_errors(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    return {}


def _from_django_validation_error(exc: DjangoValidationError) -> exceptions.ValidationError:
    detail = get_error_detail(exc)  # keeps each message's code (`not_found`, `conflict`)
    if isinstance(detail, dict):
        detail = {("non_field_errors" if key == "__all__" else key): value for key, value in detail.items()}
    else:
        detail = {"non_field_errors": detail}
    return exceptions.ValidationError(detail=detail)


# A request can be well formed and still be refused: the id it names does not exist (404), or the
# state of what it names forbids it, e.g. the last Owner leaving or a version still in use (409).
# Services say which with the code of their ValidationError; any other code is a 400.
_STATUS_BY_VALIDATION_CODE = {"not_found": 404, "does_not_exist": 404, "conflict": 409}


def _codes(detail) -> set[str]:
    if isinstance(detail, dict):
        return {code for value in detail.values() for code in _codes(value)}
    if isinstance(detail, (list, tuple)):
        return {code for item in detail for code in _codes(item)}
    return {getattr(detail, "code", None) or "invalid"}


def _validation_status(detail) -> tuple[int, str]:
    statuses = {_STATUS_BY_VALIDATION_CODE.get(code, 400) for code in _codes(detail)}
    if statuses == {404}:
        return 404, "not_found"
    if statuses == {409}:
        return 409, "conflict"
    return 400, "invalid"


def error_body(code: str, message: str, fields: dict | None = None, *, row: int | None = None) -> dict:
    """The one error body, for the API, the scoring route and the Test tab alike.

    `row` is the 1-based row of a scoring payload at fault, present only when one row is."""
    error = {"code": code, "message": message, "fields": fields or {}}
    if row is not None:
        error["row"] = row
    return {"error": error}


STORAGE_RETRY_AFTER = 10  # seconds: object storage that is down is usually back soon


class StorageUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "storage_unavailable"
    default_detail = "Object storage cannot be reached right now. Nothing was lost; try again shortly."


def is_storage_error(exc) -> bool:
    """Is `exc` object storage failing?"""
    return isinstance(exc, ObjectStoreError)


def exception_handler(exc, context):
    if is_storage_error(exc):
        response = drf_exception_handler(StorageUnavailable(f"{StorageUnavailable.default_detail} ({exc})"), context)
        response.data = error_body("storage_unavailable", " ".join(_flatten(response.data["detail"])))
        response["Retry-After"] = str(STORAGE_RETRY_AFTER)
        return response
    if isinstance(exc, DjangoValidationError):
        exc = _from_django_validation_error(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission to do this.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a 5xx: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        non_field = fields.pop("non_field_errors", [])
        if isinstance(exc.detail, list):
            non_field = _flatten(exc.detail)
        if non_field:
            message = " ".join(non_field)
        else:
            message = " ".join(f"{name}: {messages[0]}" for name, messages in sorted(fields.items()) if messages)
        response.status_code, code = _validation_status(exc.detail)
        response.data = error_body(code, message, fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = error_body(str(code), " ".join(_flatten(detail)))
    return response


# Every operation of the API can answer these (with the one error body), so the schema says so once,
# here, for every operation, the ones added later included.
ANY_OPERATION_ERRORS = {
    "400": "Invalid request: a parameter or the body is wrong (the fields at fault are named)",
    "401": "Not authenticated",
    "403": "Your role does not allow this",
    "404": "Not found (or not in your workspaces), or an id in the request names nothing",
    "406": "The Accept header asks for a format this operation does not give",
    "413": "The request is too large",
    "429": "Too many requests: wait for the seconds in Retry-After",
    "503": "Object storage cannot be reached right now (nothing was lost): retry after Retry-After",
}
CHANGE_ERRORS = {
    "409": "Refused in the current state (e.g. still in use, already finished, a name taken)",
    "415": "The body is not in a media type this operation reads (JSON unless it says otherwise)",
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular hook: document the error shape on every operation of the schema."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string", "description": "Stable machine-readable code."},
                    "message": {"type": "string", "description": "What was wrong."},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        "description": "Messages per field at fault.",
                    },
                },
            }
        },
    }
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    retry_after = {
        "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
    }
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = dict(ANY_OPERATION_ERRORS)
            if method in ("post", "put", "patch", "delete"):
                statuses.update(CHANGE_ERRORS)
            responses = operation["responses"]
            for status, description in statuses.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status.startswith("4"):  # the exception handler gives every 4xx the error body
                    response.setdefault("content", ref["content"])
                    if response.get("description") == "No response body":
                        response["description"] = statuses.get(status, "Refused")
            responses["429"].setdefault("headers", retry_after)
    return result
