"""MLflow's error shape for the tracking API: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": ...}`
with the HTTP status MLflow's own server gives that code, so the unmodified `mlflow` client raises
its usual `MlflowException` with the right `error_code`.

Every view of the tracking API (the model registry's too) answers its errors through
`mlflow_error_response`, whatever raised them: an `MlflowError`, a service's ValidationError, a 404
or 403 of the workspace policy, DRF's authentication, throttling and parsing errors.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAUTHENTICATED = "UNAUTHENTICATED"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
BAD_REQUEST = "BAD_REQUEST"
INVALID_STATE = "INVALID_STATE"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"

# As mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS (INVALID_STATE is a 400 here: a refused change, not a crash).
STATUS_BY_CODE = {
    INVALID_PARAMETER_VALUE: 400,
    BAD_REQUEST: 400,
    INVALID_STATE: 400,
    RESOURCE_ALREADY_EXISTS: 400,
    RESOURCE_DOES_NOT_EXIST: 404,
    ENDPOINT_NOT_FOUND: 404,
    PERMISSION_DENIED: 403,
    UNAUTHENTICATED: 401,
    REQUEST_LIMIT_EXCEEDED: 429,
    RESOURCE_EXHAUSTED: 413,
}


class MlflowError(Exception):
    """A refusal in MLflow's terms; `status` is the HTTP status of `code` unless given."""

    def __init__(self, message: str, code: str = INVALID_PARAMETER_VALUE, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status or STATUS_BY_CODE.get(code, 400)


def not_found(message: str) -> MlflowError:
    return MlflowError(message, RESOURCE_DOES_NOT_EXIST)


def invalid(message: str) -> MlflowError:
    return MlflowError(message, INVALID_PARAMETER_VALUE)


def permission_denied(message: str) -> MlflowError:
    return MlflowError(message, PERMISSION_DENIED)


def error_body(code: str, message: str) -> dict:
    return {"error_code": code, "message": message}


def _validation_message(exc: DjangoValidationError) -> str:
    if hasattr(exc, "error_dict"):
        messages = exc.message_dict.items()
        return " ".join(m if field == "__all__" else f"{field}: {m}" for field, ms in messages for m in ms)
    return " ".join(exc.messages)


def _validation_code(exc: DjangoValidationError) -> str:
    codes = {error.code for error in exc.error_list} if not hasattr(exc, "error_dict") else set()
    if hasattr(exc, "error_dict"):
        codes = {error.code for errors in exc.error_dict.values() for error in errors}
    if codes and codes <= {"not_found", "does_not_exist"}:
        return RESOURCE_DOES_NOT_EXIST
    return INVALID_PARAMETER_VALUE


def as_mlflow_error(exc: Exception) -> MlflowError | None:
    """The MlflowError an exception means, or None for an unexpected one (a 500)."""
    if isinstance(exc, MlflowError):
        return exc
    if isinstance(exc, DjangoValidationError):
        return MlflowError(_validation_message(exc), _validation_code(exc))
    if isinstance(exc, Http404 | exceptions.NotFound):
        return MlflowError(str(exc) or "Not found.", RESOURCE_DOES_NOT_EXIST)
    if isinstance(exc, DjangoPermissionDenied):
        return MlflowError(str(exc) or "You do not have permission to do this.", PERMISSION_DENIED)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return MlflowError(str(exc.detail), UNAUTHENTICATED)
    if isinstance(exc, exceptions.PermissionDenied):
        return MlflowError(str(exc.detail), PERMISSION_DENIED)
    if isinstance(exc, exceptions.Throttled):
        return MlflowError(str(exc.detail), REQUEST_LIMIT_EXCEEDED)
    if isinstance(exc, exceptions.ValidationError):
        return MlflowError(" ".join(_flatten(exc.detail)), INVALID_PARAMETER_VALUE)
    if isinstance(exc, exceptions.APIException):
        code = BAD_REQUEST if exc.status_code < 500 else "INTERNAL_ERROR"
        return MlflowError(" ".join(_flatten(exc.detail)), code, status=exc.status_code)
    return None


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in _flatten(v)]
    if isinstance(detail, list | tuple):
        return [m for item in detail for m in _flatten(item)]
    return [str(detail)]


def mlflow_error_response(error: MlflowError, *, headers: dict | None = None) -> Response:
    return Response(error_body(error.code, error.message), status=error.status, headers=headers)
