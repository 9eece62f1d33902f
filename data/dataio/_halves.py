"""A large CSV parsed as two halves at once: pyarrow's streaming reader parses on one thread.

The engine reads the first half as before and, on a second thread, the second half with the
column types the first block gave; it takes the second half's batches after the first half's, so
the rows, their checks and the Parquet are in the file's order. Where the halves meet is a guess
(a line break after an even number of quote characters); the reader checks it and reads the file
on one thread when anything looks wrong.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from .arriving import open_bytes

_SEARCH_BYTES = 1 << 20  # how far past the middle to look for a line break outside quotes
# Where the second half starts, as a share of the file. The first half's thread also takes every
# batch (checks, the Parquet writer's input, the columns kept), so an even split left it 0.2 s
# behind the second on 1M rows; at 42 % the read pass took 0.72 s instead of 0.81 s.
_FIRST_HALF_SHARE = 0.42
_READ_CHUNK = 8 << 20
_END = object()


def middle_line_start(path: Path, size: int, *, newline: str, quotechar: str) -> int | None:
    """The offset of a line start near the middle of the file (at ``_FIRST_HALF_SHARE`` of it) with an
    even number of quote characters before it: there, most likely, no quoted value is open. None
    when there is none within a megabyte past that point.

    Likely, not certain: a literal quote inside an unquoted value (``5" pipe``) upsets the count.
    The reader checks the first half's last row for that (``first_half_ended_in_quotes``)."""
    middle = int(size * _FIRST_HALF_SHARE)
    quote, line_break = ord(quotechar), ord(newline)
    quotes = 0
    with open_bytes(path) as fh:
        left = middle
        while left > 0:
            chunk = fh.read(min(_READ_CHUNK, left))
            if not chunk:
                return None
            left -= len(chunk)
            quotes += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == quote))
        window = np.frombuffer(fh.read(_SEARCH_BYTES), np.uint8)
    breaks = np.flatnonzero(window == line_break)
    quotes_before = quotes + np.searchsorted(np.flatnonzero(window == quote), breaks)
    even = breaks[quotes_before % 2 == 0]
    if not len(even):
        return None
    start = middle + int(even[0]) + 1
    return start if start < size else None


def first_half_ended_in_quotes(last: pa.RecordBatch | None) -> bool:
    """Whether the first half's last row has a text value with a line break in it.

    If the halves met inside a quoted value, the first half ends in that value, which pyarrow
    closes at the end of its input, line break included; a value that really holds a line break
    at the end of the first half only costs a read on one thread."""
    if last is None or not last.num_rows:
        return True
    for column in last.slice(last.num_rows - 1).columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            value = column[0].as_py()
            if value is not None and ("\n" in value or "\r" in value):
                return True
    return False


class SecondHalf(threading.Thread):
    """Parses the second half into record batches on its own thread, for the reader to take in order.

    ``batches()`` opens pyarrow's reader on the second half and yields its batches; any error it
    raises is raised again, wrapped in ``HalfFailed``, where the reader takes the batches."""

    def __init__(self, batches: Callable[[], Iterable[pa.RecordBatch]]) -> None:
        super().__init__(name="csv-second-half", daemon=True)
        self._batches = batches
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            for batch in self._batches():
                if self._stopping.is_set():
                    return
                self._queue.put(batch)
            self._queue.put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the reader's thread
            self._queue.put(exc)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while (item := self._queue.get()) is not _END:
            if isinstance(item, Exception):
                raise HalfFailed(item) from item
            yield item

    def stop(self) -> None:
        """Stop after the batch being parsed (the reader has what it needs, or has failed)."""
        self._stopping.set()
        self.join()


class HalfFailed(Exception):  # noqa: N818 - carries the second half's own error to the reader
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
