"""A node that does not run as root: bubblewrap in a user namespace, or the fallback, which hides
the node's own environment by making the node non-dumpable."""

import json
import os
import shutil
import subprocess

import pytest

from .conftest import REPO

NODE = """
import json, os, sys
from pathlib import Path
from compute.sandbox import Limits, Mount, Sandbox, SandboxSpec, protections_available

base = Path(sys.argv[1])
results = {"bubblewrap available": protections_available().bubblewrap}
for bubblewrap in (True, False):
    lines = []
    spec = SandboxSpec(
        argv=["/bin/sh", "-c", f"id -u; echo made > out.txt; cat /proc/{os.getpid()}/environ"],
        workdir=Mount(base / "work dir", "/job", writable=True), mounts=[], env={},
        limits=Limits(memory_bytes=2**30, processes=64, open_files=256, output_bytes=2**26, threads=1),
        hide=[], bubblewrap=bubblewrap,
    )
    sandbox = Sandbox(spec, lambda stream, text: lines.append(text))
    sandbox.start()
    outcome = sandbox.wait(60)
    results[str(bubblewrap)] = {"lines": lines, "exit": outcome.exit_code, "user": sandbox.protections.user}
print(json.dumps(results))
"""


def test_an_unprivileged_node_runs_sandboxes_that_cannot_read_its_environment(base):
    setpriv, python = shutil.which("setpriv"), shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not setpriv or not python:
        pytest.skip("needs root (to become an unprivileged node), setpriv and a system python3")
    shutil.chown(base / "work dir", "nobody")
    # The engine's own files where nobody can read them (the checkout may be in a private folder).
    code = base / "code"
    shutil.copytree(
        REPO / "compute" / "sandbox", code / "compute" / "sandbox", ignore=shutil.ignore_patterns("__pycache__")
    )
    (code / "compute" / "__init__.py").touch()
    done = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-E", "-s", "-c", NODE, str(base)],
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "unprivileged-node-secret"},
        cwd=code,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["bubblewrap available"] is True
    for mode in ("True", "False"):
        run = results[mode]
        assert run["lines"][:1] == ["65534"] and run["user"] is None
        assert not any("unprivileged-node-secret" in line for line in run["lines"])
        assert run["exit"] != 0  # reading the node's environ failed
    assert (base / "work dir" / "out.txt").read_text() == "made\n"
