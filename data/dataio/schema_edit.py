"""Make a new Parquet version from an existing one with changed column types or excluded columns.

Excluded columns are dropped from the new file (what training reads is then exactly the file), and
the returned schema lists only the columns kept; to bring a column back, edit the earlier version
again. Versions are immutable: the source file is only read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import DataError, fmt_count
from .limits import Limits
from .sink import ParquetSink
from .types import DATETIME_FORMATS, CastError, ColumnSchema, Schema, cast_column, physical_type_for

Progress = Callable[[int, int], None]
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class IngestResult:
    """What an ingest or a schema edit produced.

    ``warnings`` are plain dicts ``{"code", "message", "column"}`` (e.g. a column that had no name
    and was renamed). ``rows`` counts data rows; ``parquet_bytes`` is the size of the file written.
    ``profile`` is the file's profile when the call computed it (``ingest`` does by default);
    ``sha256`` the file's SHA-256 (hex) when it did (``ingest(with_sha256=True)``, when no column
    had to be cast).
    """

    schema: Schema
    rows: int
    parquet_bytes: int
    warnings: tuple[dict, ...] = ()
    profile: dict | None = None
    sha256: str | None = None

    def to_json(self) -> dict:
        return {
            "schema": self.schema.to_json(),
            "rows": self.rows,
            "parquet_bytes": self.parquet_bytes,
            "warnings": list(self.warnings),
            "profile": self.profile,
        }


@dataclass(frozen=True)
class ColumnPlan:
    """How one kept column is written: its name, semantic type and, for text dates, its format."""

    name: str
    semantic_type: str
    inferred_type: str | None = None
    datetime_format: str | None = None


def apply_schema(
    src_parquet: str | os.PathLike,
    dest_parquet: str | os.PathLike,
    new_schema: Schema,
    *,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Write ``dest_parquet``: ``src_parquet`` with the types of ``new_schema``, minus its excluded columns.

    ``new_schema`` must name exactly the columns of the source (in any order; the file keeps the
    source's order). A column whose semantic type changes is cast (see ``types.cast_column``); the
    first value that does not convert raises ``DataError`` naming the column, its data row and the
    value, and nothing is written. Excluding every column is refused. ``progress(rows_done, 0)`` is
    called after every batch. The result has no profile: call ``profile(dest, result.schema)``.
    """
    limits = limits or Limits()
    src = Path(src_parquet)
    source_names = pq.ParquetFile(src).schema_arrow.names
    wanted = {c.name: c for c in new_schema.columns}
    unknown = [n for n in wanted if n not in source_names]
    missing = [n for n in source_names if n not in wanted]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"it names columns the data does not have: {', '.join(map(repr, unknown))}")
        if missing:
            parts.append(f"it leaves out {', '.join(map(repr, missing))}")
        raise DataError(
            f"The schema does not match the data: {'; '.join(parts)}.",
            code="invalid_schema",
            column=(unknown or missing)[0],
        )
    plans = [
        ColumnPlan(n, wanted[n].semantic_type, wanted[n].inferred_type) for n in source_names if not wanted[n].excluded
    ]
    if not plans:
        raise DataError("Every column is excluded: keep at least one.", code="invalid_schema")
    result = rewrite(src, Path(dest_parquet), plans, limits=limits, progress=progress)
    # A boolean that stays boolean keeps the spelling of its source file.
    kept = tuple(
        replace(c, spelling=wanted[c.name].spelling) if c.physical_type == "bool" else c for c in result.schema.columns
    )
    return replace(result, schema=Schema(kept))


def rewrite(
    src: Path,
    dest: Path,
    plans: Sequence[ColumnPlan],
    *,
    limits: Limits,
    progress: Progress | None = None,
    warnings: Sequence[dict] = (),
) -> IngestResult:
    """Stream ``src`` into ``dest`` batch by batch, keeping and casting the columns ``plans`` lists."""
    source = pq.ParquetFile(src)
    names = [p.name for p in plans]
    plans = [_with_datetime_format(source, p) for p in plans]
    first = source.read_row_group(0, columns=names) if source.num_row_groups else None
    fields = []
    for plan in plans:
        column = first.column(plan.name) if first is not None else None
        fields.append(pa.field(plan.name, _output_type(plan, column, source.schema_arrow.field(plan.name).type)))
    schema = pa.schema(fields)
    del first
    rows = 0
    with ParquetSink(dest, schema, limits) as sink:
        for batch in source.iter_batches(batch_size=_BATCH_ROWS, columns=names, use_threads=True):
            arrays = []
            for plan, field in zip(plans, schema, strict=True):
                array = batch.column(plan.name)
                try:
                    out = cast_column(array, plan.semantic_type, datetime_format=plan.datetime_format)
                except CastError as exc:
                    row = rows + exc.index + 1
                    raise DataError(
                        f"Column {plan.name!r} cannot be converted to {plan.semantic_type}: data row "
                        f"{fmt_count(row)} holds {exc.value!r}.",
                        code="cast_failed",
                        row=row,
                        column=plan.name,
                    ) from None
                if out.type != field.type:
                    out = pc.cast(out, field.type)
                arrays.append(out)
            sink.write(pa.RecordBatch.from_arrays(arrays, schema=schema))
            rows += batch.num_rows
            if progress:
                progress(rows, 0)
        sink.commit()
    columns = tuple(
        ColumnSchema(
            name=p.name,
            semantic_type=p.semantic_type,
            physical_type=str(f.type),
            inferred_type=p.inferred_type or p.semantic_type,
        )
        for p, f in zip(plans, schema, strict=True)
    )
    return IngestResult(Schema(columns), rows, dest.stat().st_size, tuple(warnings))


def _with_datetime_format(source: pq.ParquetFile, plan: ColumnPlan) -> ColumnPlan:
    """Text becoming datetime: ISO 8601 if the first values read so, else the first format that fits."""
    field = source.schema_arrow.field(plan.name)
    if plan.semantic_type != "datetime" or plan.datetime_format or not pa.types.is_string(field.type):
        return plan
    sample = None
    for batch in source.iter_batches(batch_size=_BATCH_ROWS, columns=[plan.name]):
        sample = pc.drop_null(pc.utf8_trim_whitespace(batch.column(0))).slice(0, 1_000)
        if len(sample):
            break
    if sample is None or len(sample) == 0:
        return plan
    for fmt in (None, *DATETIME_FORMATS):
        try:
            cast_column(sample, "datetime", datetime_format=fmt)
        except CastError:
            continue
        return ColumnPlan(plan.name, plan.semantic_type, plan.inferred_type, fmt)
    return plan  # the cast will report the first value that is not a date


def _output_type(plan: ColumnPlan, first: pa.ChunkedArray | None, source_type: pa.DataType) -> pa.DataType:
    if first is None:
        return physical_type_for(plan.semantic_type, source_type)
    try:
        return cast_column(first, plan.semantic_type, datetime_format=plan.datetime_format).type
    except CastError:
        return physical_type_for(plan.semantic_type, source_type)  # the streaming pass reports it
