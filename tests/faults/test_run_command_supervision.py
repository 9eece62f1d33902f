"""The run command keeps its children up (R11): kill -9 any one of them and it comes back, while
the web server goes on answering (except, of course, while the web server itself restarts)."""

import os
import re
import signal
import threading
import time
import urllib.request

import pytest

from tests.studio.test_run_command import child_pids, start, stop, wait_for_output

pytestmark = [pytest.mark.faults, pytest.mark.worker]

ROLES = {  # how each child of the run command shows in its command line
    "web": "gunicorn",
    "worker": " worker ",
    "scheduler": " beat ",
    "agent": "compute_agent",
}


def free_port() -> int:
    import socket

    for port in range(8101, 8120):  # the ports this machine's tests may use, then any
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_by_role(pid: int) -> dict[str, int]:
    found = {}
    for child in child_pids(pid):
        try:
            cmdline = open(f"/proc/{child}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for role, marker in ROLES.items():
            if marker in f" {cmdline} ":
                found[role] = child
    return found


class HealthProbe(threading.Thread):
    """GET /health/ every 0.1 s, recording (when, answered within 10 s: this machine is shared and busy)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.samples, self.stop_event = url, [], threading.Event()
        self.errors: list[str] = []

    def run(self):
        while not self.stop_event.wait(0.1):
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310 - our server
                    ok = response.status == 200
            except OSError as exc:
                ok = False
                self.errors.append(repr(exc))
            self.samples.append((time.monotonic(), ok))

    def failures_between(self, start: float, end: float) -> int:
        return sum(1 for at, ok in self.samples if start <= at <= end and not ok)


def test_every_child_killed_is_restarted_and_the_web_server_answers_throughout(tmp_path):
    port = free_port()
    proc, log = start(tmp_path, port)
    probe = HealthProbe(f"http://127.0.0.1:{port}/health/")
    try:
        wait_for_output(log, r"Press Ctrl-C")
        first = children_by_role(proc.pid)
        assert set(first) == set(ROLES), first
        probe.start()
        time.sleep(1)
        for role in ("worker", "scheduler", "agent", "web"):
            before = children_by_role(proc.pid)[role]
            killed_at = time.monotonic()
            os.kill(before, signal.SIGKILL)
            text = wait_for_output(log, rf"restarted the {role} process \(pid (\d+)", timeout=60)
            new_pid = int(re.findall(rf"restarted the {role} process \(pid (\d+)", text)[-1])
            assert re.search(rf"the {role} process \(pid {before}\) exited with code -9", text)
            deadline = time.monotonic() + 30
            while children_by_role(proc.pid).get(role) != new_pid and time.monotonic() < deadline:
                time.sleep(0.2)
            assert children_by_role(proc.pid).get(role) == new_pid, f"{role} is not running again"
            # The web server answers again (it never stopped, unless it was the one killed).
            answered = None
            while answered is None and time.monotonic() < deadline:
                recent = [ok for at, ok in probe.samples if at > time.monotonic() - 0.5]
                answered = True if recent and all(recent) else None
                time.sleep(0.2)
            assert answered, f"/health/ does not answer after the {role} restarted"
            if role != "web":
                failures = probe.failures_between(killed_at, time.monotonic())
                assert failures == 0, f"/health/ failed {failures} times while the {role} restarted: {probe.errors}"
            time.sleep(2)  # the restarted child settles before the next is killed
        assert proc.poll() is None, "the run command itself is still running"
        assert probe.failures_between(0, killed_at) == 0
    finally:
        probe.stop_event.set()
        stop(proc)
    assert proc.returncode == 0
