"""How much a sandbox adds to starting a command: for bench/command.py."""

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .sandbox import Sandbox
from .spec import MIB, Limits, Mount, SandboxSpec


def measure_overhead(n: int = 20, bubblewrap: bool | None = None) -> float:
    """Median ms of a sandboxed `/bin/true` (start to outcome) minus the median of a bare subprocess."""
    bare, boxed = [], []
    with tempfile.TemporaryDirectory(prefix="studio-sandbox-bench-") as folder:
        workdir = Path(folder) / "work"
        workdir.mkdir()
        limits = Limits(memory_bytes=1024 * MIB, processes=64, open_files=256, output_bytes=64 * MIB, threads=1)
        for _ in range(n):
            started = time.perf_counter()
            subprocess.run(["/bin/true"], check=True)
            bare.append(time.perf_counter() - started)
            spec = SandboxSpec(
                argv=["/bin/true"], workdir=Mount(workdir, "/job", writable=True), mounts=[], env={},
                limits=limits, hide=[], bubblewrap=bubblewrap,
            )  # fmt: skip
            started = time.perf_counter()
            sandbox = Sandbox(spec, lambda stream, line: None)
            sandbox.start()
            outcome = sandbox.wait(60)
            boxed.append(time.perf_counter() - started)
            if outcome is None or not outcome.ok:
                raise RuntimeError(f"the sandboxed /bin/true failed: {outcome}")
    return (statistics.median(boxed) - statistics.median(bare)) * 1000
