from django.core.exceptions import FieldDoesNotExist
from django.core.validators import RegexValidator
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "studio.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (Account → API tokens): `Authorization: Bearer stu_…`",
        }


class SessionBeforeBodyScheme(SessionScheme):
    """The upload route's session authentication: the same cookie, with the CSRF token in the
    X-CSRFToken header only (checked before the body is read)."""

    target_class = "studio.authentication.SessionAuthenticationBeforeBody"
    name = "cookieAuthCsrfHeader"

    def get_security_definition(self, auto_schema):
        return {
            **super().get_security_definition(auto_schema),
            "description": "The browser session; a POST sends its CSRF token in the X-CSRFToken header.",
        }


# DRF refuses the NUL character in every text field (PostgreSQL cannot store it): say so.
NO_NUL_PATTERN = "^[^\\x00]*$"


class StudioAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, describing two more things the code does, for every serializer.

    - `nullable` on every output field that can be null. A field declared on a model serializer
      (`owner = SlugRelatedField(...)`, `CharField(source="node.name")`) is not known to be
      nullable unless it says `allow_null`; here its source is followed through the model, and
      any nullable step marks it.
    - a pattern on every text input without one of its own, refusing NUL as DRF does.
    """

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        is_plain_text = schema.get("type") == "string" and not ({"pattern", "format", "enum"} & set(schema))
        has_own_pattern = any(isinstance(validator, RegexValidator) for validator in field.validators)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and is_plain_text
            and not has_own_pattern
        ):
            schema["pattern"] = NO_NUL_PATTERN
        return schema

    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        if direction == "response" and _source_can_be_null(field):
            meta["nullable"] = True
        return meta


def _source_can_be_null(field) -> bool:
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or field.source == "*" or not getattr(field, "source_attrs", None):
        return False
    for attr in field.source_attrs:
        try:
            model_field = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return False
        if model_field.null:
            return True
        model = model_field.related_model
        if model is None:
            return False
    return False
