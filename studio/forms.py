from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from studio.json_limits import JsonLimitError, json_text


def _json_limit_error(value) -> JsonLimitError | None:
    if not isinstance(value, str):
        return None
    try:
        json_text(value.encode("utf-8", "surrogatepass"), max_depth=settings.STUDIO_JSON_MAX_DEPTH)
    except JsonLimitError as exc:
        return exc
    return None


class CheckedJSONField(forms.JSONField):
    """A JSON form field whose text is checked for depth and Unicode before it is parsed (R10):
    Django's own field would raise RecursionError (a 500) on JSON nested a thousand levels."""

    def to_python(self, value):
        refused = _json_limit_error(value) if value not in self.empty_values else None
        if refused:
            raise ValidationError(refused.message, code=refused.code)
        return super().to_python(value)

    def bound_data(self, data, initial):
        if not self.disabled and _json_limit_error(data):
            return InvalidJSONInput(data)  # shown back as typed, never parsed
        return super().bound_data(data, initial)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. “laptop CLI” or “nightly pipeline”.")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        help_text="Optional. Leave empty for a token that lasts until you revoke it.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
