"""The run command's supervisor with real processes: a child that keeps dying is restarted with a
growing delay and a line naming it and its exit code; the other children are left alone."""

import sys
import time

from studio.supervisor import Supervisor


def test_a_child_that_keeps_dying_is_restarted_with_a_growing_delay_and_the_others_go_on(tmp_path):
    said: list[str] = []
    supervisor = Supervisor(say=said.append)
    steady = supervisor.start("web", [sys.executable, "-c", "import time; time.sleep(120)"], {}, cwd=tmp_path)
    crasher = supervisor.start("worker", [sys.executable, "-c", "import sys; sys.exit(3)"], {}, cwd=tmp_path)
    steady_pid = steady.proc.pid
    try:
        deadline = time.monotonic() + 60
        while crasher.restarts < 2 and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.05)
        while not any("restarting it in 4 s" in line for line in said) and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.05)
    finally:
        supervisor.stop_all(timeout=10)
    exits = [line for line in said if "exited" in line]
    assert exits[0].startswith("Studio: the worker process (pid ") and "exited with code 3" in exits[0]
    assert len(exits) >= 3, exits
    for line, delay in zip(exits[:3], (1, 2, 4), strict=True):
        assert f"restarting it in {delay} s" in line, exits
    assert any(line.startswith("Studio: restarted the worker process (pid ") for line in said)
    assert steady.proc.pid == steady_pid and not any("the web process" in line for line in said)
    assert steady.proc.returncode is not None, "stop_all stopped the steady child too"
