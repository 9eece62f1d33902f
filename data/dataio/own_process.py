"""``ingest`` in a process of its own: a fresh interpreter with only pyarrow, numpy and this engine.

A worker's process carries Django, Celery and whatever its earlier jobs loaded (~180 MB before the
first row), and the heap an earlier ingest left behind. A large upload is parsed here instead::

    result, peak_rss_bytes = ingest_in_own_process(path, sniffed, dest, limits=limits, cores=2, progress=cb)

The process is started ahead of need (``IngestProcess.spare``: the imports, ~0.2 s, are paid while
the worker is idle), serves one ingest and exits, so every ingest starts from a clean heap. pandas
is kept out of it (pyarrow would import it on its first conversion: 50 MB the engine does not use).
A crash of pyarrow on a hostile file ends that process, not the worker's; the worker's process
dying ends the helper too (it watches the connection).

Messages on the connection are pickled tuples between two processes of the same install:
``("ingest", kwargs)`` → ``("progress", rows, bytes)``… then ``("done", IngestResult, facts)``,
``("data_error", DataError.to_json())`` or ``("failed", "<exception>: <message>")``; ``facts`` says the
helper's peak memory and whether pandas was loaded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from .errors import DataError
from .limits import Limits
from .sniff import Sniffed

_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds the ``data`` package
_READY_TIMEOUT_S = 60.0  # importing pyarrow on a loaded node; a helper not ready by then fails the ingest


class IngestProcessDied(RuntimeError):
    """The ingest's process ended without an answer (killed, out of memory, a crash in a library)."""


class IngestProcess:
    """One helper process, started now; ``run`` hands it one ingest."""

    _spare: IngestProcess | None = None  # the next one, importing while the worker is idle
    _spare_lock = threading.Lock()

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        paths = [str(_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "data.dataio.own_process", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.facts: dict = {}  # from the helper with its answer: peak_rss_bytes, pandas_loaded

    @classmethod
    def spare(cls) -> IngestProcess:
        """The spare started earlier (if it is still alive) or a new one."""
        with cls._spare_lock:
            helper, cls._spare = cls._spare, None
        if helper is None or helper.popen.poll() is not None:
            helper = cls()
        return helper

    @classmethod
    def prepare_spare(cls) -> None:
        """Start the next ingest's process now, so that it has imported what it needs when asked."""
        with cls._spare_lock:
            if cls._spare is None or cls._spare.popen.poll() is not None:
                cls._spare = cls()

    def run(self, progress=None, **kwargs):
        """Send one ingest and wait for its answer; ``progress`` is called here as the helper reports.

        Any exception from ``progress`` (a cancellation) kills the helper and goes on up.
        """
        try:
            if not self.conn.poll(_READY_TIMEOUT_S):
                raise IngestProcessDied("The ingest process did not start.")
            self.conn.recv()  # "ready"
            self.conn.send(("ingest", kwargs))
            while True:
                message = self.conn.recv()
                if message[0] == "progress":
                    if progress is not None:
                        progress(message[1], message[2])
                elif message[0] == "done":
                    self.facts = message[2]
                    return message[1]
                elif message[0] == "data_error":
                    error = message[1]
                    raise DataError(error["message"], code=error["code"], row=error["row"], column=error["column"])
                else:
                    raise IngestProcessDied(f"The ingest process failed: {message[1]}")
        except (EOFError, OSError):
            status = self.popen.wait()
            how = f"signal {-status}" if status < 0 else f"exit status {status}"
            raise IngestProcessDied(f"The ingest process stopped unexpectedly ({how}).") from None
        finally:
            self.stop()

    def stop(self) -> None:
        self.conn.close()
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


def ingest_in_own_process(path, sniffed: Sniffed, dest_parquet, *, limits: Limits, cores: int, progress=None, **kwargs):
    """``ingest(path, sniffed, dest_parquet, ...)`` in a helper process with ``cores`` CPUs for pyarrow;
    returns its result and the helper's peak memory in bytes.

    Same result, same ``DataError``\\s; ``IngestProcessDied`` if the helper ends without an answer.
    A spare helper for the next call is started when this one returns.
    """
    helper = IngestProcess.spare()
    try:
        result = helper.run(
            progress,
            path=str(path),
            sniffed=sniffed,
            dest_parquet=str(dest_parquet),
            limits=limits,
            cores=cores,
            **kwargs,
        )
    finally:
        IngestProcess.prepare_spare()
    return result, helper.facts["peak_rss_bytes"]


# --- The helper's side ---------------------------------------------------------------------------
class _NoPandas:
    """An import finder that refuses pandas: pyarrow then converts without it (it only checks for it)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not used by the ingest process", name=name)
        return None


def _serve(conn: Connection) -> None:
    import traceback  # deferred: only the helper formats its failures

    import pyarrow  # deferred: imported after the pandas finder is in place

    from .ingest import ingest  # deferred: the same

    conn.send(("ready",))
    try:
        kind, request = conn.recv()
    except (EOFError, OSError):
        return  # the worker's process ended before handing an ingest over
    assert kind == "ingest"
    # The worker dying mid-ingest closes the connection: stop at once rather than finish for nobody.
    threading.Thread(target=_exit_when_closed, args=(conn,), daemon=True).start()
    pyarrow.set_cpu_count(max(1, request.pop("cores")))
    # malloc gives freed pages back when trimmed (ingest trims as it goes); mimalloc kept ~100 MB.
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    send_lock = threading.Lock()  # one message at a time on the connection, whichever thread reports

    def progress(rows: int, bytes_done: int) -> None:
        with send_lock:
            conn.send(("progress", rows, bytes_done))

    try:
        result = ingest(
            request.pop("path"), request.pop("sniffed"), request.pop("dest_parquet"), progress=progress, **request
        )
    except DataError as exc:
        answer = ("data_error", exc.to_json())
    except Exception as exc:  # noqa: BLE001 - reported to the worker, which fails the job with it
        traceback.print_exc()  # to the node's log
        answer = ("failed", f"{type(exc).__name__}: {exc}"[:1000])
    else:
        answer = ("done", result, {"peak_rss_bytes": _peak_rss_bytes(), "pandas_loaded": "pandas" in sys.modules})
    with send_lock:
        conn.send(answer)
    # No interpreter teardown: pyarrow's threads may still hold Python objects (apache/arrow#33975).
    os._exit(0)


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")), 0)


def _exit_when_closed(conn: Connection) -> None:
    try:
        conn.recv()  # nothing more is ever sent: this returns only when the worker's end closes
    except (EOFError, OSError):
        pass
    os._exit(1)


def main() -> None:
    sys.meta_path.insert(0, _NoPandas())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the worker's terminal is the worker's to handle
    _serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
