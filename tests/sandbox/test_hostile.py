"""Hostile runs: each is stopped with its reason named, nothing of it is left, and the next run works."""

import time
from dataclasses import replace

from compute.sandbox import Sandbox
from compute.sandbox.sandbox import DRAIN_SECONDS
from compute.sandbox.spec import MIB

from .conftest import LIMITS, PYTHON, assert_next_run_works, make_spec, run

FORK_BOMB = "bomb() { bomb | bomb & }; bomb; sleep 1000"


def test_a_fork_bomb_is_stopped_at_the_process_limit(base, mode):
    done = run(make_spec(base, FORK_BOMB, mode))
    assert done.outcome.limit == "processes", done.outcome
    assert done.outcome.reason == f"reached its limit of {LIMITS.processes} processes and threads"
    assert done.left_running() == []
    assert_next_run_works(base, mode)


def test_a_memory_hog_is_stopped_at_the_memory_limit(base, mode):
    hog = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 2**20))"
    done = run(make_spec(base, [PYTHON, "-c", hog], mode))
    assert done.outcome.limit == "memory", done.outcome
    assert done.outcome.reason == "exceeded its memory limit of 512 MiB"
    assert_next_run_works(base, mode)


def test_a_memory_hog_spread_over_processes_is_stopped_by_the_monitor(base, mode):
    # Each of four processes stays under the per-process rlimit; together they pass the limit.
    hog = "import time\nx = bytearray(200 * 2**20)\nx[::4096] = b'x' * len(x[::4096])\ntime.sleep(1000)"
    command = f'for i in 1 2 3 4; do {PYTHON} -c "{hog}" & done; wait'
    done = run(make_spec(base, command, mode))
    assert done.outcome.limit == "memory", done.outcome
    assert done.left_running() == []
    assert_next_run_works(base, mode)


def test_an_infinite_loop_ignoring_sigterm_is_ended_by_stop(base, mode):
    started = time.monotonic()
    done = run(make_spec(base, "trap '' TERM INT; while :; do :; done", mode), stop_after=0.5)
    assert done.outcome.limit == "time limit"
    assert done.outcome.reason == "was stopped: time limit" and not done.outcome.ok
    assert time.monotonic() - started < 30
    assert done.left_running() == []
    assert_next_run_works(base, mode)


def test_a_detached_grandchild_is_ended_by_stop(base, mode):
    command = "(setsid sh -c 'trap \"\" TERM HUP; sleep 997' &) ; sleep 998"
    done = run(make_spec(base, command, mode), stop_after=1.0, stop_reason="canceled")
    assert done.outcome.limit == "canceled"
    assert done.left_running() == []
    assert_next_run_works(base, mode)


def test_a_detached_grandchild_is_ended_when_the_run_exits(base, mode):
    command = "(setsid sh -c 'trap \"\" TERM HUP; sleep 996' </dev/null >/dev/null 2>&1 &) ; echo parent done"
    done = run(make_spec(base, command, mode))
    assert done.outcome.ok and done.out() == ["parent done"]
    assert done.left_running() == []
    assert_next_run_works(base, mode)


def test_a_10_gb_file_is_stopped_at_the_output_limit(base, mode):
    writer = (
        "block = b'x' * 2**20\nwith open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(block)"
    )
    done = run(make_spec(base, [PYTHON, "-c", writer], mode))
    assert done.outcome.limit == "output size", done.outcome
    assert done.outcome.reason == "exceeded its output limit of 50 MiB"
    assert (base / "work dir" / "big.bin").stat().st_size <= LIMITS.output_bytes
    assert_next_run_works(base, mode)


def test_many_small_files_are_stopped_at_the_output_limit(base, mode):
    command = "i=0; while :; do i=$((i+1)); head -c 1048576 /dev/zero > part-$i; done"
    done = run(make_spec(base, command, mode))
    assert done.outcome.limit == "output size", done.outcome
    assert done.left_running() == []
    assert_next_run_works(base, mode)


def test_a_private_tmp_counts_in_the_output_limit(base, mode):
    command = 'i=0; while :; do i=$((i+1)); head -c 1048576 /dev/zero > "$TMPDIR/part-$i"; done'
    done = run(make_spec(base, command, mode))
    assert done.outcome.limit == "output size", done.outcome
    assert_next_run_works(base, mode)


def test_a_log_flood_is_stopped_at_the_log_limit(base, mode):
    spec = make_spec(base, "yes 'a flood of lines'", mode, limits=replace(LIMITS, log_bytes=5 * MIB))
    done = run(spec)
    assert done.outcome.limit == "output size"
    assert done.outcome.reason == "wrote more than 5 MiB to its log"
    assert len(done.lines) <= 5 * MIB // len("a flood of lines\n") + 1
    assert_next_run_works(base, mode)


def test_too_many_open_files_is_named(base, mode):
    opener = "files = []\nwhile True:\n    files.append(open('/dev/null'))"
    done = run(make_spec(base, [PYTHON, "-c", opener], mode))
    assert done.outcome.limit == "open files", done.outcome
    assert done.outcome.reason == f"reached its limit of {LIMITS.open_files} open files"
    assert_next_run_works(base, mode)


def test_a_slow_log_writer_does_not_stop_stop(base, mode):
    lines = []

    def slow(stream, text):
        time.sleep(0.05)
        lines.append(text)

    sandbox = Sandbox(make_spec(base, "while :; do echo tick; done", mode), slow)
    sandbox.start()
    time.sleep(0.5)
    started = time.monotonic()
    sandbox.stop("canceled")
    outcome = sandbox.wait(60)
    assert outcome is not None and outcome.limit == "canceled"
    # The lines still in the pipe get DRAIN_SECONDS, then are counted instead of logged.
    assert time.monotonic() - started < DRAIN_SECONDS + 10
    assert lines[0] == "tick" and "more lines of output were not logged" in lines[-1]
