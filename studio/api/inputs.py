"""The base of every input serializer: a JSON value must have the type the schema documents.

DRF coerces on its own: `0` passes for a string, `"5"` and `5.0` for an integer, `"yes"` and `1`
for a boolean. The OpenAPI schema promises types, so a client (or a fuzzer) that sends the wrong
one is told so with a 400 naming the field, instead of having its value silently converted.
"""

from rest_framework import serializers


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_kind(value) -> type:
    if isinstance(value, bool):
        return bool
    return float if _is_number(value) else str if isinstance(value, str) else type(value)


def _type_error(field: serializers.Field, value) -> str | None:
    """What is wrong with the JSON type of `value` for `field`, or None when the type fits."""
    if value is None or isinstance(field, (serializers.JSONField, serializers.HiddenField)):
        return None  # null is checked by DRF (allow_null); JSON fields take any value
    if isinstance(field, serializers.Serializer):
        return None if isinstance(value, dict) else "Expected an object."
    if isinstance(field, serializers.ListSerializer):
        return None if isinstance(value, list) else "Expected a list."
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Expected true or false."
    if isinstance(field, (serializers.IntegerField, serializers.PrimaryKeyRelatedField)):
        return None if _is_number(value) and isinstance(value, int) else "Expected a whole number."
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        return None if _is_number(value) else "Expected a number."
    if isinstance(field, serializers.MultipleChoiceField):
        return None if isinstance(value, list) else "Expected a list."
    if isinstance(field, serializers.ChoiceField):
        # DRF compares str(value), so 1 would match the choice "1": the value must be the choice itself.
        return None if _json_kind(value) in {_json_kind(choice) for choice in field.choices} else "Not a valid choice."
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return "Expected a list."
        errors = [_type_error(field.child, item) for item in value]
        return next((f"Item {i}: {error}" for i, error in enumerate(errors) if error), None)
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict):
            return "Expected an object."
        errors = {key: _type_error(field.child, item) for key, item in value.items()}
        return next((f"{key}: {error}" for key, error in errors.items() if error), None)
    if isinstance(field, (serializers.CharField, serializers.DateTimeField, serializers.DateField)):
        return None if isinstance(value, str) else "Expected a string."
    return None


# Use for every request body of the API (nested ones too): wrong JSON types are refused.
# (A comment, not a docstring: drf-spectacular would give it to every subclass as its description.)
class InputSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {}
            for name, field in self.fields.items():
                if field.read_only or field.source == "*" or field.field_name not in data:
                    continue
                message = _type_error(field, data[field.field_name])
                if message:
                    errors[name] = [message]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


# Use for the query parameters of an operation (`extend_schema(parameters=[TheSerializer])`).
# Query values are text, so DRF's conversions are right here; what is refused is a parameter given
# twice (the schema documents one value, and DRF would silently keep the last) or given empty where
# the schema allows no empty value (DRF would silently take the default).
class QueryInputSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            errors = {}
            for name, field in self.fields.items():
                values = data.getlist(name)
                if len(values) > 1:
                    errors[name] = ["Give this parameter once."]
                elif values == [""] and not getattr(field, "allow_blank", False):
                    errors[name] = ["Give a value, or leave the parameter out."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def query_values(serializer_class: type[QueryInputSerializer], request) -> dict:
    """The operation's query parameters, checked (400 naming the parameter) and converted."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data
