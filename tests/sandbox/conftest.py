"""Runs commands in real sandboxes (bubblewrap and the fallback without it): no database, no mocks."""

import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from compute.sandbox import Limits, Mount, Outcome, Sandbox, SandboxSpec, protections_available
from compute.sandbox.sandbox import MARKER
from compute.sandbox.spec import MIB
from compute.sandbox.tree import alive, marked

# The system's interpreter: the sandbox user may not reach the virtualenv's (pyenv under /root, 0700).
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
REPO = Path(__file__).resolve().parents[2]
# Where a root test run makes its folders: a system folder every user can pass through.
BASE_ROOT = Path("/var/cache/studio-sandbox-tests")
LIMITS = Limits(memory_bytes=512 * MIB, processes=64, open_files=128, output_bytes=50 * MIB, threads=2)
# Hostile runs end within seconds; this bound is ten times that and more.
TIMEOUT = 60
MODES = ["bubblewrap", "fallback"]


@dataclass
class Run:
    outcome: Outcome
    sandbox: Sandbox
    lines: list[tuple[str, str]] = field(default_factory=list)

    def out(self, stream: str = "stdout") -> list[str]:
        return [text for name, text in self.lines if name == stream]

    def left_running(self) -> list[int]:
        """Processes of this run still alive (found by the marker every process inherits)."""
        return [pid for pid in marked(MARKER, self.sandbox.id) if alive(pid)]


@pytest.fixture
def base():
    """A folder the sandbox user can reach by path (pytest's tmp_path sits in a 0700 folder of root),
    outside /tmp (a run has its own /tmp, so host paths under it are never visible) and outside the
    checkout (which may itself lie under /tmp or in a private home)."""
    root = BASE_ROOT if os.geteuid() == 0 else REPO / "var"
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="sandbox test ünï ", dir=root))
    folder.chmod(0o755)
    (folder / "work dir").mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=MODES)
def mode(request):
    if request.param == "bubblewrap" and not protections_available().bubblewrap:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("bubblewrap is not usable on this host (CI=true: a missing part is a failure)")
        pytest.skip("bubblewrap is not usable on this host")
    return request.param


def make_spec(base: Path, command: str | list[str], mode: str = "bubblewrap", **changes) -> SandboxSpec:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    spec = SandboxSpec(
        argv=argv,
        workdir=Mount(base / "work dir", "/job", writable=True),
        mounts=[],
        env={"LC_ALL": "C.UTF-8"},
        limits=LIMITS,
        hide=[],
        bubblewrap=mode == "bubblewrap",
    )
    return replace(spec, **changes)


def run(spec: SandboxSpec, stop_after: float | None = None, stop_reason: str = "time limit") -> Run:
    lines: list[tuple[str, str]] = []
    sandbox = Sandbox(spec, lambda stream, text: lines.append((stream, text)))
    sandbox.start()
    if stop_after is not None:
        timer = threading.Timer(stop_after, sandbox.stop, args=(stop_reason,))
        timer.start()
    outcome = sandbox.wait(TIMEOUT)
    if stop_after is not None:
        timer.cancel()
    if outcome is None:
        sandbox.stop("test timeout")
        pytest.fail(f"the run did not end within {TIMEOUT} s")
    return Run(outcome, sandbox, lines)


def assert_next_run_works(base: Path, mode: str) -> None:
    done = run(make_spec(base, "echo still fine", mode))
    assert done.outcome.ok, done.outcome
    assert done.out() == ["still fine"]
