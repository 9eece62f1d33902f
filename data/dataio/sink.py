"""Write Parquet so that a destination file exists only when it is complete.

``ParquetSink`` writes to a temporary file in the destination's directory and renames it over the
destination on ``commit()``; any exception inside its ``with`` block (or ``abort()``) deletes the
temporary file, so a failed ingest or edit leaves nothing behind and never touches an existing
destination. Batches are regrouped into row groups of a steady size (``Limits.row_group_rows``
rows, fewer for wide rows so a group stays near ``Limits.row_group_bytes``), which is what preview
paging reads one at a time.

When pyarrow may use more than one CPU, row groups are encoded and compressed on a background
thread while the caller parses the next ones (at most two row groups wait in between), and
``hand_over()`` lets the caller go on while that thread writes the last ones; ``commit()`` waits.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import tempfile
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .limits import Limits

# Snappy: every Parquet reader supports it, and it writes about twice as fast as zstd (files ~50 %
# larger than zstd's).
COMPRESSION = "snappy"
# Numbers that snappy shrinks by less than 40 % in the first batch are written uncompressed: for
# random-looking floats it takes ~2 ms a MB to save a quarter (0.13 s of a 1.4 s ingest for eight
# such columns of a million rows), while counts, ids and dates shrink by half or more and keep it.
_COMPRESSED_AT_MOST = 0.6
_SAMPLE_BYTES = 1 << 20
_DONE = object()
_GROUPS_AHEAD = 3  # row groups handed to the writer and not yet written (each holds its rows)


def label_columns(schema: pa.Schema, first: pa.RecordBatch) -> frozenset[str]:
    """The text columns whose values repeat in the first batch (at most one distinct value in two)."""
    labels = set()
    for field, column in zip(schema, first.columns, strict=True):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            if pc.count_distinct(column).as_py() <= 0.5 * max(1, len(column) - column.null_count):
                labels.add(field.name)
    return frozenset(labels)


def incompressible_columns(schema: pa.Schema, first: pa.RecordBatch) -> frozenset[str]:
    """The fixed-width columns whose values in the first batch snappy hardly shrinks."""
    plain = set()
    for field, column in zip(schema, first.columns, strict=True):
        if not pa.types.is_primitive(field.type) or pa.types.is_boolean(field.type):
            continue  # text and booleans (bit-packed, tiny) stay compressed
        values = column.buffers()[1]
        if values is None or values.size < 4_096:
            continue  # too little to tell
        sample = values.slice(0, min(values.size, _SAMPLE_BYTES))
        if pa.compress(sample, codec=COMPRESSION).size > _COMPRESSED_AT_MOST * sample.size:
            plain.add(field.name)
    return frozenset(plain)


class ParquetSink:
    """Append record batches of one schema; ``commit()`` publishes the file atomically."""

    def __init__(self, dest: str | os.PathLike, schema: pa.Schema, limits: Limits) -> None:
        self.dest = Path(dest)
        self.schema = schema
        self.rows = 0
        self._limits = limits
        self._group_rows: int | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        fd, name = tempfile.mkstemp(dir=self.dest.parent, prefix=f".{self.dest.name}.", suffix=".partial")
        os.close(fd)
        self.tmp = Path(name)
        self._writer: pq.ParquetWriter | None = None  # opened with the first batch
        self._handed_over = False
        self.labels: frozenset[str] = frozenset()  # text columns written with dictionaries (set by the first batch)
        self.uncompressed: frozenset[str] = frozenset()  # numbers written uncompressed (set by the first batch)
        if pa.cpu_count() > 1:
            self._queue: queue.Queue = queue.Queue()
            self._slots = threading.Semaphore(_GROUPS_AHEAD)
            self._thread = threading.Thread(target=self._drain, name="parquet-sink", daemon=True)
            self._thread.start()

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def _open(self, first: pa.RecordBatch) -> None:
        """Open the writer, choosing encodings and compression from the first batch.

        Dictionary pages pay off for text whose values repeat (labels) and cost time for numbers
        and for nearly unique text (ids, free text), which the first batch tells apart; so does
        compression for numbers that hardly shrink. Statistics are kept for numbers and dates, where
        readers use them to skip row groups.
        """
        self.labels = label_columns(self.schema, first)
        self.uncompressed = incompressible_columns(self.schema, first)
        self._writer = pq.ParquetWriter(self.tmp, self.schema, **self._options())

    def _options(self) -> dict:
        stats = [f.name for f in self.schema if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        labels = sorted(self.labels) or False
        compression = COMPRESSION
        if self.uncompressed:
            compression = {f.name: "none" if f.name in self.uncompressed else COMPRESSION for f in self.schema}
        return dict(compression=compression, use_dictionary=labels, write_statistics=stats or False)

    def stored_schema(self) -> pa.Schema:
        """The schema the finished file will give back (seconds become milliseconds, for one), known
        before it is written: an empty file written with the same options, read back."""
        buffer = io.BytesIO()
        pq.ParquetWriter(buffer, self.schema, **self._options()).close()
        return pq.ParquetFile(io.BytesIO(buffer.getvalue())).schema_arrow

    def write(self, batch: pa.RecordBatch) -> bool:
        """Append ``batch``; True when it completed a row group (handed to the writer)."""
        if batch.num_rows == 0:
            return False
        if self._writer is None:
            self._open(batch)
        if self._group_rows is None:
            per_row = max(1, batch.nbytes // batch.num_rows)
            by_bytes = self._limits.row_group_bytes // per_row
            self._group_rows = max(min(1_024, self._limits.row_group_rows), min(self._limits.row_group_rows, by_bytes))
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= self._group_rows:
            self._flush(final=False)
            return True
        return False

    def _flush(self, *, final: bool) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        size = self._group_rows or max(1, table.num_rows)
        full = table.num_rows if final else table.num_rows - table.num_rows % size
        if full:
            self._submit(table.slice(0, full), size, final=final)
        rest = table.slice(full)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _submit(self, table: pa.Table, size: int, *, final: bool) -> None:
        """To the writer's thread; blocks while it is ``_GROUPS_AHEAD`` row groups behind, except for
        the last rows (``hand_over`` returns at once: the columns are profiled while they are written)."""
        if self._thread is None:
            self._writer.write_table(table, row_group_size=size)
            return
        if self._error is not None:
            raise self._error
        if not final:
            self._slots.acquire()
        self._queue.put((table, size, not final))

    def _drain(self) -> None:
        # Runs until it gets _DONE, even after an error, so the producer never waits for a slot forever.
        while (item := self._queue.get()) is not _DONE:
            table, size, took_slot = item
            if self._error is None:
                try:
                    self._writer.write_table(table, row_group_size=size)
                except BaseException as exc:  # noqa: BLE001 - handed to the producing thread
                    self._error = exc
            del table, item
            if took_slot:
                self._slots.release()

    def _stop_thread(self) -> None:
        if self._thread is not None:
            if not self._handed_over:  # else _DONE is queued already
                self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def hand_over(self) -> None:
        """Give the writer's thread the last rows and return while it writes them; ``commit()`` (or
        ``abort()``) must follow. Without the thread, they are written here."""
        try:
            if self._writer is None:
                self._open(pa.RecordBatch.from_pylist([], schema=self.schema))
            self._flush(final=True)
            if self._thread is not None:
                self._queue.put(_DONE)
            self._handed_over = True
        except BaseException:
            self.abort()
            raise

    def commit(self) -> Path:
        """Write what is buffered, close, and rename onto ``dest``; returns ``dest``."""
        if not self._handed_over:
            self.hand_over()
        try:
            self._stop_thread()
            if self._error is not None:
                raise self._error
            self._writer.close()
            os.replace(self.tmp, self.dest)
        except BaseException:
            self.abort()
            raise
        return self.dest

    def abort(self) -> None:
        """Forget everything written; safe to call twice."""
        self._error = self._error or RuntimeError("aborted")
        self._stop_thread()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self.tmp.unlink(missing_ok=True)
