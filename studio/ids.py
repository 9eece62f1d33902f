"""Ids from URLs and query strings, bounded to what the database can hold.

A 64-bit primary key has at most 19 digits; a longer number in a path or filter would make
SQLite raise OverflowError (a 500) instead of the 404 or empty list the user should get.
"""

MAX_ID_DIGITS = 18


class IdConverter:
    """`<id:name>` in URL patterns: a whole number short enough to be a database id."""

    regex = f"[0-9]{{1,{MAX_ID_DIGITS}}}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


def parse_id(value) -> int | None:
    """The id in a query-string value, or None when it is not a plain, storable whole number."""
    text = str(value if value is not None else "").strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None
