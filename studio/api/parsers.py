"""The API's JSON parser: depth and Unicode are checked before the body is parsed (R10)."""

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from studio.json_limits import JsonLimitError, json_text


class CheckedJSONParser(JSONParser):
    """DRF's JSONParser, but a body nested past `STUDIO_JSON_MAX_DEPTH` or holding invalid Unicode
    is a 400 (`too_deep`, `invalid_unicode`) instead of a RecursionError or a string that breaks later."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            text = json_text(stream.read(), max_depth=settings.STUDIO_JSON_MAX_DEPTH)
        except JsonLimitError as exc:
            raise ParseError(exc.message, code=exc.code) from None
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
