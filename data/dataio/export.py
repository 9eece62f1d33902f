"""Stream a data asset's Parquet file as CSV that spreadsheets cannot run (R8 in RELIABILITY.md)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .errors import DataError
from .types import Schema

# A spreadsheet treats a cell starting with one of these as a formula (or strips it and then does).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\0")
_FORMULA_PATTERN = "^[=+\\-@\\t\\r\\x00]"
_BATCH_ROWS = 65_536


def neutralise(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula: ``=1+1`` → ``'=1+1``."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _neutralise_column(column: pa.Array) -> pa.Array:
    risky = pc.match_substring_regex(column, _FORMULA_PATTERN)
    if not pc.any(risky).as_py():
        return column
    return pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'"), column, ""), column)


def _whole_seconds(column: pa.Array) -> pa.Array:
    """Timestamps without fractions are written ``2024-03-01 10:00:00``, not ``...10:00:00.000``."""
    try:
        return pc.cast(column, pa.timestamp("s", column.type.tz), safe=True)
    except pa.ArrowInvalid:
        return column


def _for_csv(column: pa.Array) -> pa.Array:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return _neutralise_column(column)
    if pa.types.is_timestamp(column.type) and column.type.unit != "s":
        return _whole_seconds(column)
    return column


def iter_csv(
    parquet_path: str | os.PathLike, schema: Schema | None = None, *, bom: bool = False, batch_rows: int = _BATCH_ROWS
) -> Iterator[bytes]:
    """Yield the file as UTF-8 CSV: a header line, then one chunk per batch of ``batch_rows`` rows.

    Columns ``schema`` marks excluded are left out. Text cells (and names) starting with
    ``= + - @``, tab, CR or NUL get a leading ``'``; numbers, booleans and dates are written as
    such (a negative number stays a number; whole-second timestamps as ``2024-03-01 10:00:00``).
    Missing values are empty fields. ``bom=True`` starts
    the file with a UTF-8 byte-order mark, which makes Excel read accents correctly.
    """
    source = pq.ParquetFile(parquet_path)
    available = source.schema_arrow.names
    names = [c.name for c in schema.included] if schema is not None else available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise DataError(
            f"The schema names columns the file does not have: {', '.join(map(repr, unknown))}.",
            code="unknown_column",
            column=unknown[0],
        )
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([neutralise(n) for n in names])
    yield (b"\xef\xbb\xbf" if bom else b"") + header.getvalue().encode("utf-8")
    options = pcsv.WriteOptions(include_header=False)
    for batch in source.iter_batches(batch_size=batch_rows, columns=names):
        arrays = [_for_csv(batch.column(n)) for n in names]
        sink = pa.BufferOutputStream()
        pcsv.write_csv(pa.RecordBatch.from_arrays(arrays, names=names), sink, write_options=options)
        yield sink.getvalue().to_pybytes()
