"""Batch scoring of a Parquet file, chunk by chunk, into a new Parquet file.

The output has every input column, untouched (same Arrow types, same order), followed by
``prediction`` and one ``probability_<class>`` column per class (a regression: ``prediction``
alone, float64) — a user wants the rows they sent
beside what the model said about them. A name that is already an input column gets ``_scored``
appended. Memory stays bounded: one chunk of ``chunk_rows`` rows (plus the Parquet row group being
read) is held at a time. The output is written to a temporary file next to the destination and
renamed at the end, so a failed run leaves no partial file. A value that does not fit the
signature stops the run with a ``PayloadError`` naming the column and the row (1-based, counted
over the whole file).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelformat.signature import PayloadError

PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"


def _label_type(classes: list) -> pa.DataType:
    if all(isinstance(c, bool) for c in classes):
        return pa.bool_()
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return pa.int64()
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        return pa.float64()
    return pa.string()


def _free_name(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"{name}_scored"
    taken.add(name)
    return name


def output_columns(input_names, classes) -> tuple[str, list[str]]:
    """(prediction column, probability columns) named so as not to clash with the input columns."""
    taken = set(input_names)
    prediction = _free_name(PREDICTION_COLUMN, taken)
    probabilities = [_free_name(f"{PROBABILITY_PREFIX}{c}", taken) for c in classes]
    return prediction, probabilities


def score_table(predictor, parquet_path, out_parquet_path, *, chunk_rows: int = 50_000, on_chunk=None) -> dict:
    """Score every row of ``parquet_path`` with ``predictor`` into ``out_parquet_path``.

    ``on_chunk(rows_done, rows_total)`` is called after each chunk (progress; it may raise to stop).

    Returns ``{"rows_in": int, "rows_scored": int, "chunks": int, "prediction_column": str,
    "probability_columns": [str, ...]}``.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    source = pq.ParquetFile(parquet_path)
    schema = source.schema_arrow.remove_metadata()
    signature = predictor.signature
    present = set(schema.names)
    missing = [s.name for s in signature.columns if s.required and s.name not in present]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        raise PayloadError(
            f"The table has no column {shown} (the model needs it).", field=missing[0], code="missing_column"
        )
    wanted = [name for name in signature.names if name in present]
    regression = getattr(predictor, "regression", False)
    classes = list(predictor.classes)
    prediction_name, probability_names = output_columns(schema.names, classes)
    label_type = pa.float64() if regression else _label_type(classes)
    out_schema = pa.schema(
        list(schema) + [pa.field(prediction_name, label_type)] + [pa.field(n, pa.float64()) for n in probability_names]
    )
    class_array = np.array(classes, dtype=object)

    destination = Path(out_parquet_path)
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.tmp")
    rows = chunks = 0
    writer = pq.ParquetWriter(temporary, out_schema)
    try:
        for record_batch in source.iter_batches(batch_size=chunk_rows):
            table = pa.Table.from_batches([record_batch]).replace_schema_metadata(None)
            frame = table.select(wanted).to_pandas()
            validated = signature.validate_frame(frame, row_offset=rows)
            if regression:
                numbers = predictor.predict_numbers_batch(validated)
                writer.write_table(table.append_column(prediction_name, pa.array(numbers, type=pa.float64())))
                rows, chunks = rows + len(frame), chunks + 1
                if on_chunk is not None:
                    on_chunk(rows, source.metadata.num_rows)
                continue
            proba = np.asarray(predictor.predict_proba_batch(validated), dtype=np.float64)
            labels = class_array[proba.argmax(axis=1)] if len(proba) else class_array[:0]
            table = table.append_column(prediction_name, pa.array(labels.tolist(), type=label_type))
            for j, name in enumerate(probability_names):
                table = table.append_column(name, pa.array(proba[:, j], type=pa.float64()))
            writer.write_table(table)
            rows += len(frame)
            chunks += 1
            if on_chunk is not None:
                on_chunk(rows, source.metadata.num_rows)
        writer.close()
        os.replace(temporary, destination)
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    return {
        "rows_in": source.metadata.num_rows,
        "rows_scored": rows,
        "chunks": chunks,
        "prediction_column": prediction_name,
        "probability_columns": probability_names,
    }
