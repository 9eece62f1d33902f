"""Ordinary runs: output, exit codes, the environment, the folders a run sees."""

import os
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from compute.sandbox import Mount, Sandbox, SandboxError, protections_available
from compute.sandbox.bench import measure_overhead

from .conftest import LIMITS, PYTHON, make_spec, run


def test_a_run_streams_stdout_and_stderr_and_completes(base, mode):
    done = run(make_spec(base, "echo 'héllo wörld'; echo warn >&2; echo bye", mode))
    assert done.outcome.ok and done.outcome.reason == "completed"
    assert done.out() == ["héllo wörld", "bye"]
    assert done.out("stderr") == ["warn"]
    assert done.outcome.exit_code == 0 and done.outcome.seconds < 30


def test_a_non_zero_exit_fails_with_the_last_lines_of_stderr(base, mode):
    done = run(make_spec(base, "echo first >&2; echo 'the real error' >&2; exit 2", mode))
    assert not done.outcome.ok
    assert done.outcome.exit_code == 2 and done.outcome.limit is None
    assert done.outcome.reason == "exited with code 2: first\nthe real error"
    assert done.outcome.stderr_tail == ["first", "the real error"]


def test_a_missing_program_says_so(base, mode):
    done = run(make_spec(base, ["no-such-program-anywhere", "x"], mode))
    assert done.outcome.exit_code == 127
    assert "no-such-program-anywhere" in done.outcome.reason


def test_a_partial_last_line_binary_output_and_a_huge_line_are_delivered_safely(base, mode):
    script = (
        "import sys; out = sys.stdout.buffer;"
        "out.write(b'bin \\x89PNG\\x00\\xff\\x1b[31mred\\x1b[0m\\ttab\\n');"
        "out.write(b'y' * 1_000_000 + b'\\n');"
        "out.write(b'no newline at the end')"
    )
    done = run(make_spec(base, [PYTHON, "-c", script], mode))
    assert done.outcome.ok, done.outcome
    first, long, last = done.out()
    assert first == "bin \\x89PNG\\xffred\ttab"
    assert long == "y" * 10_000 + "… [cut 990000 chars]"
    assert last == "no newline at the end"


def test_the_environment_is_the_allow_list_and_nothing_of_the_node(base, mode, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "node-secret-key")
    monkeypatch.setenv("DATABASE_URL", "postgres://node:pw@db/studio")
    spec = make_spec(base, "env", mode, env={"MY_VAR": "a value with spaces ✓"})
    done = run(spec)
    env = dict(line.split("=", 1) for line in done.out() if "=" in line)
    assert "SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert "node-secret-key" not in "\n".join(done.out())
    assert env["MY_VAR"] == "a value with spaces ✓"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["HOME"] == done.sandbox.path_of(spec.workdir)


def test_the_run_cannot_read_the_environment_of_the_node(base, mode, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "node-secret-key")
    done = run(make_spec(base, f"cat /proc/{os.getpid()}/environ; cat /proc/{os.getppid()}/environ", mode))
    assert "node-secret-key" not in "\n".join(done.out() + done.out("stderr"))
    assert done.outcome.exit_code != 0


def test_the_run_is_not_root_when_the_node_is(base, mode):
    if os.geteuid() != 0:
        pytest.skip("the node is not root here")
    done = run(make_spec(base, "id -u; id -G", mode))
    assert done.out() == ["65534", "65534"]
    assert "nobody (uid 65534)" in " ".join(done.sandbox.protections.describe())


def test_inputs_are_read_only_and_outputs_writable(base, mode):
    inputs, outputs = base / "in put", base / "out put"
    inputs.mkdir()
    outputs.mkdir()
    (inputs / "data.csv").write_text("a,b\n1,2\n")
    (inputs / "data.csv").chmod(0o666)  # even a file anyone may write stays read-only with bubblewrap
    spec = make_spec(base, "", mode)
    input_mount, output_mount = Mount(inputs, "/inputs/train"), Mount(outputs, "/outputs/model", writable=True)
    sandbox = Sandbox(replace(spec, mounts=[input_mount, output_mount]), lambda s, t: None)
    into, out = sandbox.path_of(input_mount), sandbox.path_of(output_mount)
    command = (
        f"cat '{into}/data.csv'; echo more >> '{into}/data.csv'; rm -f '{into}/data.csv'; echo model > '{out}/m.txt'"
    )
    done = run(replace(spec, argv=["/bin/sh", "-c", command], mounts=[input_mount, output_mount]))
    assert done.out() == ["a,b", "1,2"], done.lines
    assert (outputs / "m.txt").read_text() == "model\n"
    if mode == "bubblewrap":
        assert (inputs / "data.csv").read_text() == "a,b\n1,2\n"
        assert "Read-only file system" in "\n".join(done.out("stderr"))


def test_a_hidden_folder_is_invisible_but_a_mount_inside_it_is_bound(base):
    if not protections_available().bubblewrap:
        pytest.skip("bubblewrap is not usable on this host")
    data = base / "studio data"
    (data / ".hidden").mkdir(parents=True)
    (data / ".hidden" / "secret.txt").write_text("the-studio-secret")
    (data / ".hidden" / "secret.txt").chmod(0o644)
    job_input = data / "workspaces" / "w1" / "input"
    job_input.mkdir(parents=True)
    (job_input / "x.txt").write_text("job data")
    command = f"cat '{data}/.hidden/secret.txt'; ls -a '{data}'; cat /inputs/x.txt"
    done = run(make_spec(base, command, "bubblewrap", hide=[data], mounts=[Mount(job_input, "/inputs")]))
    assert "the-studio-secret" not in "\n".join(done.out())
    assert "No such file or directory" in "\n".join(done.out("stderr"))
    assert done.out() == [".", "..", "job data"]


def test_with_bubblewrap_the_network_is_isolated(base):
    if not protections_available().bubblewrap:
        pytest.skip("bubblewrap is not usable on this host")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        script = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')"
        done = run(make_spec(base, [PYTHON, "-c", script], "bubblewrap"))
    assert done.out() == [] and done.outcome.exit_code != 0
    assert done.sandbox.protections.network is True


def test_with_bubblewrap_a_run_may_be_given_the_network(base):
    if not protections_available().bubblewrap:
        pytest.skip("bubblewrap is not usable on this host")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        script = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')"
        done = run(make_spec(base, [PYTHON, "-c", script], "bubblewrap", network=True))
    assert done.out() == ["connected"], done.lines
    assert done.sandbox.protections.network is False
    assert "The job has network access." in done.sandbox.protections.describe()


def test_secrets_are_masked_in_every_line(base, mode):
    token = "run-token-0123456789"
    spec = make_spec(base, f"echo token={token}; echo {token} >&2; exit 1", mode, secrets=[token, ""])
    done = run(spec)
    assert done.out() == ["token=***"] and done.out("stderr") == ["***"]
    assert token not in done.outcome.reason


def test_the_fallback_says_bubblewrap_is_missing(base, monkeypatch):
    monkeypatch.setenv("STUDIO_SANDBOX_BWRAP", "0")
    found = protections_available()
    assert found.bubblewrap is False and found.pid_namespace is False and found.network is False
    said = " ".join(found.describe())
    assert "Bubblewrap is not available" in said and "network access" in said
    sandbox = Sandbox(make_spec(base, "true", bubblewrap=None), lambda s, t: None)
    assert sandbox.protections.bubblewrap is False


@pytest.mark.parametrize(
    "change, message",
    [
        ({"argv": []}, "empty"),
        ({"env": {"BAD=NAME": "x"}}, "bad name"),
        ({"env": {"X": "nul\0"}}, "bad name or value"),
        ({"env": {"X": "lone \ud800 surrogate"}}, "bad name or value"),
        ({"argv": ["/bin/echo", "\ud800"]}, "not valid Unicode"),
        ({"mounts": [Mount(Path("/no/such/folder"), "/in")]}, "does not exist"),
    ],
)
def test_a_bad_spec_is_refused_with_a_clear_message(base, change, message):
    with pytest.raises(SandboxError, match=message):
        Sandbox(make_spec(base, "true", **change), lambda s, t: None)


def test_a_mount_target_must_be_an_absolute_path_inside(base):
    for target in ("relative", "/", "/in/../etc"):
        with pytest.raises(SandboxError, match="absolute"):
            Sandbox(make_spec(base, "true", mounts=[Mount(base, target)]), lambda s, t: None)


def test_the_limits_default_log_size_is_the_output_size():
    assert LIMITS.log_bytes is None


def test_the_overhead_over_a_bare_subprocess_is_measured():
    overhead = measure_overhead(n=5)
    # The target is 100 ms (bench/command.py measures it); this bound only catches a broken start-up.
    assert 0 < overhead < 1000


def test_a_folder_hidden_through_a_symbolic_link_is_hidden_too(base):
    if not protections_available().bubblewrap:
        pytest.skip("bubblewrap is not usable on this host")
    (base / "real data").mkdir()
    (base / "real data" / "secret.txt").write_text("linked-secret")
    (base / "link").symlink_to(base / "real data")
    done = run(make_spec(base, f"cat '{base}/real data/secret.txt'", "bubblewrap", hide=[base / "link"]))
    assert "linked-secret" not in "\n".join(done.out()) and done.outcome.exit_code != 0


def test_the_run_has_a_private_tmp_that_is_removed_after_it(base, mode):
    marker = Path("/tmp") / f"host-file-{os.getpid()}"
    marker.write_text("host")
    try:
        done = run(make_spec(base, f'echo job > "$TMPDIR/mine"; ls "$TMPDIR"; ls /tmp/{marker.name}', mode))
    finally:
        marker.unlink()
    assert done.out()[0] == "mine"
    if mode == "bubblewrap":
        assert done.outcome.exit_code != 0  # the host's /tmp is not the run's
    assert not list(Path(tempfile.gettempdir()).glob(f"studio-sandbox-*-{done.sandbox.id}-*"))


def test_wait_returns_none_while_running_and_stop_after_the_end_changes_nothing(base, mode):
    sandbox = Sandbox(make_spec(base, "sleep 1; echo woke", mode), lambda s, t: None)
    sandbox.start()
    assert sandbox.wait(0.01) is None
    outcome = sandbox.wait(60)
    sandbox.stop("too late")
    assert outcome.ok and sandbox.wait(0) is outcome and outcome.limit is None


def test_a_dead_nodes_leftover_private_tmp_is_swept_by_the_next_run(base, mode):
    leftover = Path(tempfile.gettempdir()) / "studio-sandbox-999999999-deadbeef-x"
    (leftover / "tmp").mkdir(parents=True, exist_ok=True)
    assert run(make_spec(base, "true", mode)).outcome.ok
    assert not leftover.exists()


def test_with_bubblewrap_a_mount_may_not_cover_a_system_folder(base):
    if not protections_available().bubblewrap:
        pytest.skip("bubblewrap is not usable on this host")
    for target in ("/etc", "/usr/local/job", "/tmp/x", "/proc/1"):
        with pytest.raises(SandboxError, match="would cover the system"):
            Sandbox(make_spec(base, "true", mounts=[Mount(base, target)]), lambda s, t: None)
