"""A text upload read while it arrives: its ingest starts before the last byte is in.

The process receiving an upload keeps a state file next to it (``<file>.arriving``), replaced
atomically, so a reader never sees half a state:

* ``arriving <expected size> <stale seconds>`` while bytes come in;
* ``written <size> <stale seconds>`` once every byte is written, while the upload's checks run;
* ``received <size>`` once the upload is accepted;
* ``refused <message>`` when the upload was cut off or refused.

A reader that reaches the end of what is there waits for more while the state says arriving, stops
at the written size, and raises ``DataError`` when the upload was refused, when the state file is
gone, or when nothing changed for the stale time (the receiving process died). Whoever makes
something lasting of the file waits for the verdict first (``wait_for_verdict``). A file without a
state file is complete and accepted, as every file that was not streamed is.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import DataError

STATE_SUFFIX = ".arriving"
_POLL_SECONDS = 0.005  # a reader waiting at the end: the upload writes a MiB every few milliseconds


def state_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + STATE_SUFFIX)


@dataclass(frozen=True)
class Arrival:
    state: str  # "arriving", "written", "received" or "refused"
    size: int = 0  # expected while arriving, final once written
    stale_seconds: float = 0.0
    message: str = ""


def _write_state(path: Path, text: str) -> None:
    target = state_path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)


def mark_arriving(path: str | os.PathLike, *, expected_size: int, stale_seconds: float) -> None:
    _write_state(Path(path), f"arriving {int(expected_size)} {float(stale_seconds)}")


def mark_written(path: str | os.PathLike, *, size: int, stale_seconds: float) -> None:
    _write_state(Path(path), f"written {int(size)} {float(stale_seconds)}")


def mark_received(path: str | os.PathLike, *, size: int) -> None:
    _write_state(Path(path), f"received {int(size)}")


def mark_refused(path: str | os.PathLike, message: str) -> None:
    _write_state(Path(path), f"refused {message}")


def arrival(path: str | os.PathLike) -> Arrival | None:
    """The upload's state, or None for a file that was complete before anyone read it."""
    try:
        text = state_path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    state, _, rest = text.partition(" ")
    if state in ("arriving", "written"):
        size, stale = rest.split()
        return Arrival(state, int(size), float(stale))
    if state == "received":
        return Arrival(state, int(rest))
    return Arrival("refused", message=rest)


def expected_size(path: str | os.PathLike) -> int:
    """The size the file has, or will have once it has arrived (as announced: a bound, not a promise)."""
    state = arrival(path)
    if state is not None and state.size:
        return state.size
    return Path(path).stat().st_size


class ArrivingFile:
    """A file opened for reading while it may still be arriving: ``read(n)`` returns ``n`` bytes, or
    fewer only at the end of the whole upload."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._final: int | None = None

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if self._final is not None or (size is not None and 0 <= size <= len(data)):
            return data
        parts = [data]
        got = len(data)
        last_growth = time.monotonic()
        while size is None or size < 0 or got < size:
            more = self._file.read(-1 if size is None or size < 0 else size - got)
            if more:
                parts.append(more)
                got += len(more)
                last_growth = time.monotonic()
                continue
            if self._finished(last_growth):
                break
            time.sleep(_POLL_SECONDS)
        return b"".join(parts)

    def _finished(self, last_growth: float) -> bool:
        """At the end of what is there: whether that is the end of the upload."""
        state = _go_on_waiting(self._path, last_growth)
        if state.state in ("written", "received") and self._file.tell() >= state.size:
            self._final = state.size
            return True
        return False  # more is coming, or the last bytes are written: read them

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise ValueError("a file still arriving is read from a known position")
        return self._file.seek(offset)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ArrivingFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_bytes(path: str | os.PathLike) -> BinaryIO | ArrivingFile:
    """The file for reading: as it is when complete, through ``ArrivingFile`` while it may still arrive."""
    path = Path(path)
    state = arrival(path)
    if state is None or (state.state in ("written", "received") and path.stat().st_size >= state.size):
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    return ArrivingFile(path)


def _go_on_waiting(path: Path, last_growth: float) -> Arrival:
    """The state of an upload a reader waits for; DataError when it will not come (refused, cut off,
    stalled)."""
    state = arrival(path)
    if state is None:
        raise DataError(
            "The upload was cut off before the whole file arrived; nothing was stored.", code="upload_interrupted"
        )
    if state.state == "refused":
        raise DataError(state.message or "The upload was refused.", code="upload_refused")
    if state.state in ("arriving", "written") and time.monotonic() - last_growth > state.stale_seconds:
        raise DataError(
            f"No byte of the upload arrived for {state.stale_seconds:.0f} s: it was given up.",
            code="upload_interrupted",
        )
    return state


def wait_for(path: str | os.PathLike, size: int | None = None) -> None:
    """Wait until the file holds ``size`` bytes, or the whole upload when ``size`` is None (at once
    for a complete file); DataError when it will not come."""
    path = Path(path)
    if arrival(path) is None:
        return
    seen, last_growth = -1, time.monotonic()
    while True:
        now_size = path.stat().st_size
        if now_size != seen:
            seen, last_growth = now_size, time.monotonic()
        state = _go_on_waiting(path, last_growth)
        if state.state in ("written", "received") and now_size >= state.size:
            return
        if size is not None and now_size >= size:
            return
        time.sleep(_POLL_SECONDS)


def wait_for_verdict(path: str | os.PathLike) -> None:
    """Wait until an upload that was arriving is accepted; DataError when it is refused, cut off
    (its state file gone: a refusal removes it with the file) or given up."""
    path = Path(path)
    started = time.monotonic()
    while _go_on_waiting(path, started).state != "received":
        time.sleep(_POLL_SECONDS)
