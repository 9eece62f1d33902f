"""Pages of rows from a data asset's Parquet file, for the preview table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._json import json_safe
from .errors import DataError
from .types import Schema

MAX_PAGE_ROWS = 1_000


def _plain(column):
    """Nanosecond timestamps as microseconds: Python's datetime (and JSON text) stop there."""
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
        return pc.cast(column, pa.timestamp("us", column.type.tz), safe=False)
    return column


class Page(NamedTuple):
    """``columns`` (names, in order), ``rows`` (lists of JSON-safe values) and the file's ``total_rows``."""

    columns: list[str]
    rows: list[list]
    total_rows: int


def read_page(
    parquet_path: str | os.PathLike,
    offset: int,
    limit: int,
    columns: Sequence[str] | None = None,
    *,
    schema: Schema | None = None,
) -> Page:
    """Rows ``offset`` .. ``offset + limit - 1`` (0-based) of the chosen columns.

    Reads only the row groups that hold those rows (found from the Parquet metadata) and only the
    columns asked for: all of them by default, or the columns ``schema`` does not exclude.
    ``limit`` is capped at ``MAX_PAGE_ROWS``. An offset past the end gives no rows. Values are
    JSON-safe: datetimes as ISO 8601 strings, NaN and infinities as ``None``.
    """
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must not be negative")
    limit = min(limit, MAX_PAGE_ROWS)
    source = pq.ParquetFile(parquet_path)
    available = source.schema_arrow.names
    if columns is None:
        columns = [c.name for c in schema.included] if schema is not None else available
    columns = list(columns)
    unknown = [c for c in columns if c not in available]
    if unknown or len(set(columns)) != len(columns):
        raise DataError(
            f"Unknown or repeated columns: {', '.join(map(repr, unknown or columns))}.",
            code="unknown_column",
            column=(unknown or columns)[0],
        )
    metadata = source.metadata
    total = metadata.num_rows
    end = min(total, offset + limit)
    if offset >= end:
        return Page(columns, [], total)
    groups, first_row, start = [], None, 0
    for index in range(metadata.num_row_groups):
        size = metadata.row_group(index).num_rows
        if start + size > offset and start < end:
            groups.append(index)
            first_row = start if first_row is None else first_row
        start += size
        if start >= end:
            break
    table = source.read_row_groups(groups, columns=columns).select(columns).slice(offset - first_row, end - offset)
    values = [[json_safe(v) for v in _plain(column).to_pylist()] for column in table.columns]
    return Page(columns, [list(row) for row in zip(*values, strict=True)], total)
