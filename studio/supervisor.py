"""Keeps the run command's child processes up (R11): one that dies is restarted with a backoff.

A child (the web server, the system worker, the scheduler, the compute agent) runs in a session
of its own; when it dies, whatever is left of its process group (gunicorn's or Celery's pool
processes, which may still hold the port or a message) is killed before it starts again. A death
never stops the other children: the web server keeps answering while the worker restarts.
"""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Restart at once-ish, then back off to at most 30 s for a child that keeps dying; a child that
# ran this long since its last start is healthy again and starts over at the first delay.
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict
    cwd: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_deaths: int = 0  # deaths in a row, each before HEALTHY_AFTER_SECONDS
    restart_at: float | None = None


@dataclass
class Supervisor:
    say: Callable[[str], None]
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict, cwd: str) -> Child:
        child = Child(name=name, argv=argv, env=env, cwd=str(cwd))
        self._spawn(child)
        self.children.append(child)
        return child

    def get(self, name: str) -> Child | None:
        return next((c for c in self.children if c.name == name), None)

    def check(self) -> None:
        """Notice children that died and restart the ones whose backoff has passed."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None:
                code = child.proc.poll()
                if code is None:
                    continue
                _kill_group(child.proc.pid)  # what the dead parent left behind
                ran = now - child.started_at
                child.quick_deaths = child.quick_deaths + 1 if ran < HEALTHY_AFTER_SECONDS else 1
                delay = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** (child.quick_deaths - 1))
                child.restart_at = now + delay
                self.say(
                    f"Studio: the {child.name} process (pid {child.proc.pid}) exited with code {code} "
                    f"after {ran:.0f} s; restarting it in {delay:.0f} s."
                )
            elif now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                self._spawn(child)
                self.say(
                    f"Studio: restarted the {child.name} process (pid {child.proc.pid}, restart {child.restarts})."
                )

    def stop_all(self, timeout: float = 30.0) -> None:
        """SIGTERM every child (each parent stops its own processes), SIGKILL what outlives timeout."""
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(child.proc.pid)
                child.proc.wait()
            _kill_group(child.proc.pid)

    def _spawn(self, child: Child) -> None:
        # A session of its own, so we decide when it stops (and a Ctrl-C reaches it once, from us).
        child.proc = subprocess.Popen(child.argv, env=child.env, cwd=child.cwd, start_new_session=True)
        child.started_at = time.monotonic()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
