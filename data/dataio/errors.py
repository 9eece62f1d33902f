"""The one error type of the data-ingest engine, and the wording helpers its messages share.

Row numbers in messages and in ``DataError.row`` follow one convention:

* For a text file (CSV, TSV, ``.csv.gz``) a row is a record as a spreadsheet would number it: the
  header, when there is one, is row 1 and the first data row is row 2; without a header the first
  data row is row 1. Blank lines are not counted. Errors found before parsing (a line that is too
  long, bytes that are not valid UTF-8) count lines instead, which is the same number unless a
  quoted field contains a line break.
* For a Parquet file (an upload, or a version edited with the schema editor) rows are data rows
  counted from 1, and messages say "data row".

Columns are named by their 1-based position and, when known, their name: "column 3 ('price')".
"""

from __future__ import annotations


class DataError(Exception):
    """The input cannot be turned into a data asset; ``message`` says why in the user's words.

    ``code`` is a stable, machine-readable reason (``empty_file``, ``ragged_row``, ...) for the API
    layer; ``row`` and ``column`` locate the problem when it has a place (see the module docstring
    for the row convention; ``column`` is a column name, or a 1-based position when the name is
    unknown).
    """

    def __init__(
        self, message: str, *, code: str = "invalid_data", row: int | None = None, column: str | int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.row = row
        self.column = column

    def to_json(self) -> dict:
        """A plain dict for a JSON field or an API error body."""
        return {"code": self.code, "message": self.message, "row": self.row, "column": self.column}

    def __repr__(self) -> str:
        return f"DataError({self.message!r}, code={self.code!r}, row={self.row!r}, column={self.column!r})"


def fmt_count(n: int) -> str:
    """1204 -> '1,204' (how people read counts)."""
    return f"{n:,}"


def fmt_bytes(n: float) -> str:
    """Decimal units, one decimal: 2_000_000_000 -> '2.0 GB', 10 * 2**20 -> '10.5 MB'."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def column_label(position: int, name: str | None = None) -> str:
    """'column 3' or "column 3 ('price')" for a 1-based position."""
    return f"column {position}" if name is None else f"column {position} ({name!r})"
