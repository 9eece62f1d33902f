"""Checks on a JSON request body BEFORE it is parsed: nesting depth and Unicode validity (R10).

Python's parser recurses once per level, so a body nested a thousand levels deep raises
RecursionError (a 500) instead of a parse error; and it turns the escape ``"\\ud800"`` (or the raw
bytes of an encoded surrogate) into a string that cannot be encoded again, so the failure surfaces
later, far from the input (a 500 when a model or the database sees it). Both are refused here with
a message naming the problem. Pure Python, no Django: the scoring route and the API's parser share it.

The depth check is a linear scan at C speed: count the brackets (most bodies stop there); only a
body with more brackets than the limit is reduced to its quotes and brackets, the pieces inside
strings are dropped, and the brackets are summed.
"""

import json
import re

import numpy as np

DEFAULT_MAX_DEPTH = 64

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes (\" and \\ included)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
# An escaped backslash (skipped), a valid surrogate pair (skipped), or a lone surrogate (group 1).
_SURROGATE_ESCAPE = re.compile(
    r"\\(?:\\|u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(u[dD][89a-fA-F][0-9a-fA-F]{2}))"
)
_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")


class JsonLimitError(ValueError):
    """A body refused before parsing; `code` is the API error code (`too_deep`, `invalid_unicode`)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in `raw` (brackets inside strings do not count)."""
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)  # so that every quote left opens or closes a string
    # Only quotes and brackets remain; dropping adjacent quote pairs keeps each bracket's parity
    # (inside or outside a string) and leaves few quotes, then the even pieces lie outside strings.
    structure = raw.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = b"".join(structure.split(b'"')[::2]) if b'"' in structure else structure
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def check_json_depth(raw: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return  # fewer openers than the limit: it cannot be deeper (the common case, no scan)
    if json_depth(raw) > max_depth:
        raise JsonLimitError("too_deep", f"The JSON is nested more than {max_depth} levels deep (the limit).")


def json_text(raw: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> str:
    """The body decoded strictly (UTF-8, or the UTF-16/32 that JSON allows), checked for depth and
    lone surrogates: ready for ``json.loads``. Raises JsonLimitError."""
    encoding = json.detect_encoding(raw)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise JsonLimitError(
            "invalid_unicode", f"The body is not valid {encoding.upper()}: bad bytes at offset {exc.start}."
        ) from None
    check_json_depth(raw if encoding.startswith("utf-8") else text.encode(), max_depth=max_depth)
    if _SURROGATE_HINT.search(text):
        for match in _SURROGATE_ESCAPE.finditer(text):
            if match.group(1):
                raise JsonLimitError(
                    "invalid_unicode",
                    f"The JSON has a lone surrogate \\{match.group(1)} at character {match.start()}: "
                    "it is not a Unicode character.",
                )
    return text


def json_loads_checked(raw: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH):
    """Parse a JSON body after the depth and Unicode checks.

    Raises JsonLimitError for a body past a limit, ValueError (json's own) for one that is not JSON.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")  # a lone surrogate in the text is then refused as bytes
    return json.loads(json_text(raw, max_depth=max_depth))
