"""The API's JSON parser: size, depth and Unicode are checked before the body is parsed (R10)."""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from studio.json_limits import JsonLimitError, json_text


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class CheckedJSONParser(JSONParser):
    """DRF's JSONParser, but a body nested past `STUDIO_JSON_MAX_DEPTH` or holding invalid Unicode
    is a 400 (`too_deep`, `invalid_unicode`) instead of a RecursionError or a string that breaks later."""

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF reads the request itself, around Django's DATA_UPLOAD_MAX_MEMORY_SIZE: apply it here.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise RequestTooLarge(f"The JSON body is larger than the limit of {limit:,} bytes.")
        try:
            text = json_text(body, max_depth=settings.STUDIO_JSON_MAX_DEPTH)
        except JsonLimitError as exc:
            raise ParseError(exc.message, code=exc.code) from None
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
