"""Column statistics for a data asset version: what the profile page and AutoML's checks read.

``profile`` reads the Parquet file one column at a time (memory: one column) and returns plain
JSON (ints, floats, strings, lists, dicts; never NaN or infinity).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._json import json_safe
from .types import ColumnSchema, Schema, infer_column, infer_from_type

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_BINS = 30
TOP_VALUES = 10
MOSTLY_MISSING_PCT = 50.0
HIGH_CARDINALITY_DISTINCT = 50
HIGH_CARDINALITY_RATIO = 0.05
PROFILE_VERSION = 1


def profile(parquet_path: str | os.PathLike, schema: Schema | None = None) -> dict:
    """Statistics of every column ``schema`` does not exclude (without a schema, types are inferred).

    Shape::

        {"version": 1, "rows": 1000, "columns": 3,
         "column_profiles": [
           {"name": "price", "semantic_type": "numeric", "physical_type": "double",
            "missing": 12, "missing_pct": 1.2, "distinct": 950,
            # numeric, integer and datetime (datetimes as ISO 8601 text, "std" in seconds):
            "min": 1.0, "max": 99.5, "mean": 50.1, "std": 28.7,
            "quantiles": {"p5": .., "p25": .., "p50": .., "p75": .., "p95": ..},
            "histogram": {"edges": [31 numbers or ISO strings], "counts": [30 ints]},  # numeric, datetime
            # categorical, boolean, text, identifier (and integer with few values):
            "top_values": [{"value": "red", "count": 40}, ...],        # at most 10, most frequent first
            "length": {"min": 1, "mean": 7.5, "max": 20},              # text and identifier stored as text
            "warnings": [{"code": "mostly_missing", "message": "..."}]},
           ...],
         "warnings": [{"column": "price", "code": "...", "message": "..."}, ...]}   # all columns' warnings

    Missing counts nulls and NaN. Standard deviation is the sample one (n - 1), quantiles are
    linearly interpolated: both as pandas computes them. Warning codes: ``constant``,
    ``mostly_missing`` (> 50 % missing), ``high_cardinality`` (a categorical column with > 50
    distinct values that are > 5 % of the rows), ``identifier_like`` (an identifier, or an integer
    or categorical column whose every value is different).
    """
    path = Path(parquet_path)
    source = pq.ParquetFile(path)
    rows = source.metadata.num_rows
    if schema is None:
        schema = _schema_of(source)
    return assemble(rows, [profile_column(c, read_column(path, c.name), rows) for c in schema.included])


def read_column(path: str | os.PathLike, name: str) -> pa.ChunkedArray:
    """One whole column. Text that Parquet stores with a dictionary (labels) is read as dictionary
    arrays: the profile then hashes each distinct value once, not each row. (Nearly unique text is
    stored plainly, and building a dictionary while reading it would cost more than it saves.)"""
    source = pq.ParquetFile(path)
    index = source.schema_arrow.get_field_index(name)
    kind = source.schema_arrow.field(index).type
    metadata = source.metadata
    if (
        (pa.types.is_string(kind) or pa.types.is_large_string(kind))
        and metadata.num_row_groups
        and metadata.row_group(0).column(index).has_dictionary_page
    ):
        source = pq.ParquetFile(path, read_dictionary=[name])
    return source.read(columns=[name]).column(0)


def assemble(rows: int, column_profiles: list[dict]) -> dict:
    """The profile document from per-column profiles (see ``profile`` for the shape)."""
    warnings = [{"column": p["name"], **w} for p in column_profiles for w in p["warnings"]]
    return json_safe(
        {
            "version": PROFILE_VERSION,
            "rows": rows,
            "columns": len(column_profiles),
            "column_profiles": column_profiles,
            "warnings": warnings,
        }
    )


def _schema_of(source: pq.ParquetFile) -> Schema:
    columns = []
    for f in source.schema_arrow:
        inferred = infer_from_type(f.type) or infer_column(f.name, source.read(columns=[f.name]).column(0))
        columns.append(ColumnSchema(f.name, inferred.semantic_type, str(f.type), inferred_type=inferred.semantic_type))
    return Schema(tuple(columns))


class _computed_once:  # noqa: N801 - used as a decorator, like functools.cached_property
    """``functools.cached_property`` without its lock: Python 3.11's takes one lock for every
    instance of the class, so two columns profiled on two threads waited for each other's sorts
    (a float column's profile took 115 ms on either thread instead of 57). A ``ColumnFacts`` is
    used by one thread at a time."""

    def __init__(self, compute) -> None:
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


class ColumnFacts:
    """One read column and what both type inference and the profile compute from it, each at most once.

    NaN is treated as missing. Numbers and datetimes (as integer ticks) are sorted once: the sort
    gives the distinct count, quantiles, histogram and most frequent values. Other types are
    counted with a hash table (``value_counts``), which gives the distinct count and top values.
    """

    def __init__(self, data: pa.ChunkedArray) -> None:
        if pa.types.is_floating(data.type) and pc.any(pc.is_nan(data)).as_py():
            data = pc.if_else(pc.is_nan(data), pa.scalar(None, data.type), data)
        self.data = data  # text may come dictionary-encoded (see read_column)
        kind = self.kind = data.type.value_type if pa.types.is_dictionary(data.type) else data.type
        self.temporal = pa.types.is_timestamp(kind) or pa.types.is_date(kind)
        self.sortable = pa.types.is_integer(kind) or pa.types.is_floating(kind) or self.temporal

    @_computed_once
    def sorted_values(self) -> np.ndarray:
        data = self.data
        if pa.types.is_date32(data.type):
            # Sorted as days, then made seconds: a few hundred days are sorted by counting, where
            # their seconds spread too widely for it (the profile of a 1M-row column: 48 → 15 ms).
            days = ColumnFacts(pc.cast(data, pa.int32())).sorted_values.astype(np.int64)
            days *= 86_400
            return days
        if pa.types.is_date(data.type):
            data = pc.cast(data, pa.timestamp("s"))
        if self.temporal:
            data = pc.cast(data, pa.int64())
        if pa.types.is_floating(data.type):
            # Into one array chunk by chunk, missing values as NaN, which the sort puts last (NaN itself
            # counts as missing here): no chunk's nulls dropped into a copy of its own first.
            values = np.empty(len(data), data.type.to_pandas_dtype())
            start = 0
            for chunk in data.chunks:
                values[start : start + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
                start += len(chunk)
            values.sort()
            return values[: len(data) - data.null_count]
        # Chunk by chunk into one new array: no whole-column copy in between.
        chunks = [pc.drop_null(chunk).to_numpy(zero_copy_only=False) for chunk in data.chunks]
        dtype = data.type.to_pandas_dtype()
        values = np.concatenate(chunks) if chunks else np.empty(0, dtype)
        del chunks
        if values.dtype.kind in "iu" and values.size:
            low, high = int(values.min()), int(values.max())
            if high - low <= max(1_000_000, 2 * values.size):
                # Counting sort: codes, ratings, years, row numbers... O(n) instead of O(n log n).
                # In place and one array at a time: an id column's peak stays near three copies.
                if values.dtype.itemsize < 8:
                    values = values.astype(np.int64)  # an int8's -100..100 would wrap when shifted
                values -= values.dtype.type(low)
                counts = np.bincount(values)
                del values
                return np.repeat(np.arange(low, high + 1, dtype=dtype), counts)
        values.sort()  # a copy already: sorted where it is
        return values

    @_computed_once
    def run_starts(self) -> np.ndarray:
        values = self.sorted_values
        if not values.size:
            return np.empty(0, np.int64)
        starts = np.flatnonzero(values[1:] != values[:-1])
        starts += 1
        return starts

    @_computed_once
    def counts(self) -> pa.StructArray:
        """``{"values", "counts"}`` of the non-null values, in no particular order."""
        if not pa.types.is_dictionary(self.data.type):
            return pc.value_counts(pc.drop_null(self.data))
        # Count dictionary indices: only the dictionary values are hashed (to unify row groups).
        unified = self.data.unify_dictionaries()
        dictionary = unified.chunk(0).dictionary if unified.num_chunks else pa.array([], self.kind)
        counts = np.zeros(len(dictionary), np.int64)
        for chunk in unified.chunks:
            counts += np.bincount(pc.drop_null(chunk.indices).to_numpy(), minlength=len(dictionary))
        present = np.flatnonzero(counts)
        return pa.StructArray.from_arrays([dictionary.take(present), pa.array(counts[present])], ["values", "counts"])

    @_computed_once
    def distinct(self) -> int:
        if self.sortable:
            values = self.sorted_values  # counted without run_starts, which only top values need
            return int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0
        return len(self.counts)


def profile_column(column: ColumnSchema, facts: ColumnFacts | pa.ChunkedArray, rows: int) -> dict:
    """The profile of one column (the whole column, or its ``ColumnFacts``; ``rows``: the file's rows)."""
    if not isinstance(facts, ColumnFacts):
        facts = ColumnFacts(facts)
    data, kind, semantic = facts.data, facts.kind, column.semantic_type
    missing = data.null_count
    out: dict = {
        "name": column.name,
        "semantic_type": semantic,
        "physical_type": str(kind),
        "missing": missing,
        "missing_pct": round(100.0 * missing / rows, 2) if rows else 0.0,
        "distinct": facts.distinct,
    }
    if facts.sortable:
        if semantic in ("numeric", "integer", "datetime"):
            stats = _describe(facts.sorted_values, facts.distinct)
            if facts.temporal:
                stats = _as_datetimes(stats, kind)
            elif pa.types.is_integer(kind) and stats["min"] is not None:
                stats["min"], stats["max"] = int(stats["min"]), int(stats["max"])
            out.update(stats)
        if semantic not in ("numeric", "datetime") and (semantic != "integer" or facts.distinct <= 20):
            out["top_values"] = _top_runs(facts.sorted_values, facts.run_starts, kind)
    else:
        out["top_values"] = _top_counts(facts.counts)
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and rows > missing:
            # From the value counts: each distinct value's length, weighted by how often it occurs.
            lengths = pc.utf8_length(facts.counts.field("values")).to_numpy(zero_copy_only=False)
            weights = facts.counts.field("counts").to_numpy()
            out["length"] = {
                "min": int(lengths.min()),
                "mean": float((lengths * weights).sum() / weights.sum()),
                "max": int(lengths.max()),
            }
    out["warnings"] = _warnings(column, out, rows)
    return out


def _describe(values: np.ndarray, distinct: int) -> dict:
    """min/max/mean/std/quantiles/histogram of sorted values, as pandas computes them; infinities left out."""
    if values.dtype.kind == "f":
        low, high = np.searchsorted(values, [-np.inf, np.inf], side="right")[0], np.searchsorted(values, np.inf)
        infinite = int(values.size - (high - low))
        values = values[low:high]
    else:
        infinite = 0
    stats: dict = {"infinite": infinite} if infinite else {}
    if values.size == 0:
        stats.update(
            {
                "min": None,
                "max": None,
                "mean": None,
                "std": None,
                "quantiles": {f"p{round(q * 100)}": None for q in QUANTILES},
                "histogram": None,
            }
        )
        return stats
    as_float = values.astype(np.float64, copy=False)
    position = np.asarray(QUANTILES) * (values.size - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, values.size - 1)
    quantiles = as_float[below] + (as_float[above] - as_float[below]) * (position - below)
    try:
        counts, edges = _sorted_histogram(as_float, bins=max(1, min(MAX_BINS, distinct)))
    except ValueError:  # a range too narrow for float64 bins (one value, or nanoseconds apart)
        counts, edges = np.array([values.size]), np.array([as_float[0], as_float[-1]])
    stats.update(
        {
            "min": float(as_float[0]),
            "max": float(as_float[-1]),
            "mean": float(as_float.mean()),
            "std": float(as_float.std(ddof=1)) if values.size > 1 else None,
            "quantiles": {f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        }
    )
    return stats


def _sorted_histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(values, bins)`` of sorted float ``values``, by binary search: the same edges
    (from the minimum and maximum) and counts (each bin half-open, the last closed), without a pass
    over every value."""
    edges = np.histogram_bin_edges(values[[0, -1]], bins=bins)
    below = np.searchsorted(values, edges[1:-1], side="left")
    bounds = np.concatenate(([0], below, [values.size]))
    return np.diff(bounds), edges


def _as_datetimes(stats: dict, kind: pa.DataType) -> dict:
    """Tick statistics back to ISO 8601 text; ``std`` in seconds."""
    if pa.types.is_date(kind):
        unit, tz = "s", None
    else:
        unit, tz = kind.unit, kind.tz
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]

    def iso(value):
        if value is None:
            return None
        micros = int(round(value * 1_000_000 / per_second))  # Python's datetime stops at microseconds
        stamp = pa.scalar(micros, pa.timestamp("us", tz)).as_py()
        return (
            stamp.date().isoformat() if pa.types.is_date(kind) and micros % 86_400_000_000 == 0 else stamp.isoformat()
        )

    stats["min"], stats["max"], stats["mean"] = iso(stats["min"]), iso(stats["max"]), iso(stats["mean"])
    stats["std"] = None if stats["std"] is None else stats["std"] / per_second
    stats["quantiles"] = {k: iso(v) for k, v in stats["quantiles"].items()}
    if stats["histogram"]:
        stats["histogram"]["edges"] = [iso(e) for e in stats["histogram"]["edges"]]
    return stats


def _top_runs(values: np.ndarray, starts: np.ndarray, kind: pa.DataType) -> list[dict]:
    """Most frequent values of sorted ``values`` (runs between ``starts``), ties by value."""
    if values.size == 0:
        return []
    if starts.size + 1 == values.size:
        # All different (an id): the first values, once each; no arrays of a million counts.
        k = min(TOP_VALUES, values.size)
        return _top_values(values[:k], [1] * k, kind)
    bounds = np.concatenate(([0], starts, [values.size]))
    counts = np.diff(bounds)
    k = min(TOP_VALUES, counts.size)
    shortlist = np.argpartition(-counts, k - 1)[:k] if counts.size > k else np.arange(counts.size)
    # Runs are in value order, so sorting the shortlist by (count desc, run index) breaks ties by value.
    chosen = sorted(shortlist.tolist(), key=lambda i: (-counts[i], i))
    return _top_values(values[bounds[chosen]], [int(counts[i]) for i in chosen], kind)


def _top_values(firsts: np.ndarray, counts: list[int], kind: pa.DataType) -> list[dict]:
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        firsts = pc.cast(pa.array(firsts, pa.int64()), pa.timestamp("s") if pa.types.is_date(kind) else kind)
        firsts = firsts.to_pylist()
    else:
        firsts = firsts.tolist()
    return [{"value": v, "count": c} for v, c in zip(firsts, counts, strict=True)]


def _top_counts(counts: pa.StructArray) -> list[dict]:
    if len(counts) == 0:
        return []
    table = pa.table({"values": counts.field("values"), "counts": counts.field("counts")})
    if len(table) > 100_000:
        # Shortlist by count first: sorting a million unique ids for ten of them is wasted work.
        table = table.take(pc.select_k_unstable(table, k=TOP_VALUES, sort_keys=[("counts", "descending")]))
    order = pc.sort_indices(table, sort_keys=[("counts", "descending"), ("values", "ascending")])
    top = table.take(order.slice(0, TOP_VALUES))
    return [
        {"value": v, "count": c}
        for v, c in zip(top.column("values").to_pylist(), top.column("counts").to_pylist(), strict=True)
    ]


def _warnings(column: ColumnSchema, stats: dict, rows: int) -> list[dict]:
    name, distinct = column.name, stats["distinct"]
    valid = rows - stats["missing"]
    warnings = []
    if distinct == 1:
        warnings.append({"code": "constant", "message": f"Column {name!r} has a single value: it cannot help a model."})
    if stats["missing_pct"] > MOSTLY_MISSING_PCT:
        warnings.append(
            {"code": "mostly_missing", "message": f"Column {name!r} is {stats['missing_pct']:g} % missing."}
        )
    if (
        column.semantic_type == "categorical"
        and distinct > HIGH_CARDINALITY_DISTINCT
        and distinct > HIGH_CARDINALITY_RATIO * rows
    ):
        warnings.append(
            {
                "code": "high_cardinality",
                "message": f"Column {name!r} has {distinct:,} categories ({100 * distinct / rows:.0f} % of "
                "rows): too many for most models.",
            }
        )
    if column.semantic_type == "identifier" or (
        column.semantic_type in ("integer", "categorical") and valid >= 20 and distinct == valid
    ):
        warnings.append(
            {
                "code": "identifier_like",
                "message": f"Column {name!r} looks like an identifier (its values are all different): "
                "exclude it from training.",
            }
        )
    return warnings
