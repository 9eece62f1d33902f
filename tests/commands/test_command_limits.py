"""Command jobs that break the rules, on real node workers: each ends FAILED (or CANCELED) with the
limit named, leaves nothing running, and the same node then runs the next command job to the end."""

import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from commands.jobs import LOG_LINE_CHARS
from compute.jobs.models import Artifact, Job, JobStatus
from compute.models import TargetKind
from compute.services import target_create
from environments.models import EnvironmentVersion
from environments.services import environment_prepare
from tests.conftest import wait_for

from .test_command_jobs import finished, log_text, submit, upload

pytestmark = [pytest.mark.worker]

# Small for the nodes, so a 10 GB writer is stopped within a second or two.
OUTPUT_LIMIT_BYTES = 50 * 2**20

FORK_BOMB = "bomb() { bomb | bomb & }; bomb; sleep 1000"
# A node of size small has 2 GiB: this asks for 3 GiB, 64 MiB at a time, a byte of each page touched.
MEMORY_HOG_PY = """\
chunks = []
for _ in range(48):
    chunk = bytearray(64 * 2**20)
    chunk[::4096] = b"x" * len(chunk[::4096])
    chunks.append(chunk)
print("still alive with", len(chunks) * 64, "MiB")
"""
SPIN = "trap '' TERM INT HUP; echo spinning; while :; do :; done"
# Detaches twice (a new session, then an orphan grandchild) and beats into a file for ever.
GRANDCHILD_PY = """\
import os, sys, time
beat = os.path.join(sys.argv[1], "beat.txt")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import signal
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            with open(beat, "a") as fh:
                fh.write("beat\\n")
            time.sleep(0.2)
    os._exit(0)
print("grandchild started", flush=True)
time.sleep(1000)
"""
TEN_GB_PY = """\
import sys
block = bytes(2**20)
with open(sys.argv[1] + "/zeros.bin", "wb") as fh:
    for _ in range(10 * 1024):
        fh.write(block)
"""
FAILING_PY = """\
import sys
print("working on it")
for n in range(30):
    print(f"noise line {n}", file=sys.stderr)
print("ValueError: the column 'prix (€)' is empty", file=sys.stderr)
sys.exit(3)
"""
GARBAGE_PY = """\
import sys
out = sys.stdout.buffer
out.write(b"garbage \\xff\\xfe\\x00\\x1b[31mred\\x1b[0m \\xc3\\x28 bell\\x07 done\\n")
out.write(b"A" * 1_000_000 + b"\\n")
out.write("après le déluge ✓\\n".encode())
out.flush()
"""
HELLO_PY = "import sys\nprint('hello from', sys.argv[1])\n"


@pytest.fixture(scope="module")
def environment_cache(tmp_path_factory) -> Path:
    """One host cache for the module's nodes: bare Python is built once, by the first test."""
    return tmp_path_factory.mktemp("environments")


@pytest.fixture
def node_env(node_env, environment_cache):
    return {
        **node_env,
        "STUDIO_COMMAND_MAX_OUTPUT_BYTES": str(OUTPUT_LIMIT_BYTES),
        "STUDIO_ENVIRONMENT_CACHE_DIR": str(environment_cache),
    }


@pytest.fixture
def cluster(owner, workspace):
    return target_create(
        actor=owner,
        workspace=workspace,
        kind=TargetKind.CLUSTER,
        name="cpu-small",
        size="small",
        min_nodes=0,
        max_nodes=1,
    ).target


@pytest.fixture
def environment(api, owner, workspace, environment_cache, settings):
    """Bare Python, built here before any job runs: a job's time limit counts from its start, so a
    build must not eat into the time-limit test's 3 s."""
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/environments/",
        {"name": "bare-python", "base": "python", "requirements": ""},
        format="json",
    )
    assert response.status_code == 201, response.content
    settings.STUDIO_ENVIRONMENT_CACHE_DIR = environment_cache
    version = EnvironmentVersion.objects.get(pk=response.json()["latest_version_id"])
    environment_prepare(version=version, on_line=lambda line: None)
    return version.pk


def run_command(api, owner, workspace, cluster, environment, files, command, **extra) -> int:
    """Submit a command job; its processes carry TAG=<a unique value> (see left_running)."""
    spec = {
        "code_snapshot_id": upload(api, owner, workspace, files)["id"],
        "command": command,
        "environment_version_id": environment,
        **extra.pop("spec", {}),
    }
    spec["env"] = {"TAG": f"job-{uuid.uuid4().hex}", **spec.get("env", {})}
    response = submit(api, owner, workspace, cluster, spec, **extra)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def marked_processes(tag: str) -> list[int]:
    """Processes on this host whose environment holds TAG=tag (the test runs as root: it reads them all)."""
    needle = f"TAG={tag}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        if needle in environ:
            found.append(int(entry.name))
    return found


def assert_nothing_left_running(job: Job) -> None:
    tag = job.spec["env"]["TAG"]
    wait_for(lambda: not marked_processes(tag), timeout=30, message=f"every process of job {job.pk} to be gone")


def assert_the_node_runs_the_next_job(api, owner, workspace, cluster, environment, after: Job):
    job = finished(run_command(api, owner, workspace, cluster, environment, {"hi.py": HELLO_PY}, "python hi.py 'ünï'"))
    assert job.status == JobStatus.COMPLETED, (job.error, log_text(job))
    assert "hello from ünï" in log_text(job)
    assert job.node_id == after.node_id, "the next job ran on another node"


def failed(job_id) -> Job:
    job = finished(job_id, timeout=120)
    assert job.status == JobStatus.FAILED, (job.status, job.error, log_text(job))
    assert_nothing_left_running(job)
    return job


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_fork_bomb_fails_at_the_process_limit_and_the_node_goes_on(
    api, owner, workspace, cluster, environment, agent, broker
):
    job = failed(run_command(api, owner, workspace, cluster, environment, {"README": "bomb"}, FORK_BOMB))
    limit = settings.STUDIO_COMMAND_MAX_PROCESSES
    assert f"The command reached its limit of {limit} processes and threads" in job.error, job.error
    assert job.result["limit"] == "processes"
    assert_the_node_runs_the_next_job(api, owner, workspace, cluster, environment, job)


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_memory_hog_fails_at_the_node_sizes_memory_and_the_node_goes_on(
    api, owner, workspace, cluster, environment, agent, broker
):
    job = failed(run_command(api, owner, workspace, cluster, environment, {"hog.py": MEMORY_HOG_PY}, "python hog.py"))
    assert "The command exceeded its memory limit of 2 GiB" in job.error, job.error
    assert "still alive" not in log_text(job)
    assert_the_node_runs_the_next_job(api, owner, workspace, cluster, environment, job)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_loop_that_ignores_sigterm_fails_at_the_time_limit_and_the_node_goes_on(
    api, owner, workspace, cluster, environment, agent, broker
):
    started = time.monotonic()
    job = failed(
        # long enough for the cached environment's check and the loop's start on a slow machine
        run_command(api, owner, workspace, cluster, environment, {"README": "spin"}, SPIN, time_limit_seconds=10)
    )
    assert "time limit of 10 s" in job.error and "time limit of 10 s" in job.status_reason, job.error
    assert "ready (cached on this host)" in log_text(job) and "spinning" in log_text(job)
    assert time.monotonic() - started < 90
    assert_the_node_runs_the_next_job(api, owner, workspace, cluster, environment, job)


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_detached_grandchild_is_gone_when_its_job_is_canceled_and_the_node_goes_on(
    api, owner, workspace, cluster, environment, agent, broker, studio_data_dir
):
    job_id = run_command(
        api,
        owner,
        workspace,
        cluster,
        environment,
        {"detach.py": GRANDCHILD_PY},
        "python detach.py ${{outputs.beats}}",
        spec={"outputs": {"beats": {"type": "folder"}}},
    )
    job = wait_for(
        lambda: Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).first(), timeout=120, message="the job to run"
    )
    beat = studio_data_dir / "scratch" / f"job-{job.pk}-{job.attempt}" / "outputs" / "beats" / "beat.txt"
    wait_for(lambda: beat.exists() and beat.stat().st_size > 0, timeout=120, message="the grandchild to beat")
    assert marked_processes(job.spec["env"]["TAG"])

    response = api(owner).post(f"/api/v1/workspaces/{workspace.pk}/jobs/{job_id}/cancel/")
    assert response.status_code == 200, response.content
    job = finished(job_id, timeout=60)
    assert job.status == JobStatus.CANCELED, (job.status, job.error, log_text(job))
    assert_nothing_left_running(job)
    if beat.exists():  # the scratch folder may be swept already; if not, it has stopped growing
        size = beat.stat().st_size
        time.sleep(1.0)
        assert beat.stat().st_size == size, "the grandchild still writes"
    assert_the_node_runs_the_next_job(api, owner, workspace, cluster, environment, job)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_10_gb_output_fails_at_the_output_limit_and_the_node_goes_on(
    api, owner, workspace, cluster, environment, agent, broker
):
    job = failed(
        run_command(
            api,
            owner,
            workspace,
            cluster,
            environment,
            {"big.py": TEN_GB_PY},
            "python big.py ${{outputs.zeros}}",
            spec={"outputs": {"zeros": {"type": "folder"}}},
        )
    )
    assert "The command exceeded its output limit of 50 MiB" in job.error, job.error
    assert job.result["limit"] == "output size"
    assert not Artifact.objects.filter(job=job, name__startswith="outputs/").exists()
    assert_the_node_runs_the_next_job(api, owner, workspace, cluster, environment, job)


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_non_zero_exit_fails_with_the_last_lines_of_stderr_and_binary_output_is_logged_safely(
    api, owner, workspace, cluster, environment, agent, broker
):
    job = failed(run_command(api, owner, workspace, cluster, environment, {"fail.py": FAILING_PY}, "python fail.py"))
    assert job.error.startswith("The command exited with code 3: "), job.error
    assert "ValueError: the column 'prix (€)' is empty" in job.error
    assert "noise line 29" in job.error and "noise line 0\n" not in job.error  # the last lines, not all
    assert job.result["exit_code"] == 3

    noisy = finished(
        run_command(api, owner, workspace, cluster, environment, {"garbage.py": GARBAGE_PY}, "python garbage.py")
    )
    assert noisy.status == JobStatus.COMPLETED, (noisy.error, log_text(noisy))
    assert noisy.node_id == job.node_id
    lines = list(noisy.log.order_by("seq").values_list("text", flat=True))
    garbage = next(line for line in lines if line.startswith("garbage "))
    assert garbage == "garbage \\xff\\xfered \\xc3( bell done", garbage  # escaped, control characters dropped
    long_line = next(line for line in lines if line.startswith("AAAA"))
    assert long_line == "A" * LOG_LINE_CHARS + f"… [cut {1_000_000 - LOG_LINE_CHARS} chars]"  # the cut is said
    assert "après le déluge ✓" in lines
    assert "The command exited with code 0" in "\n".join(lines)


# --- Hostile submissions: a clear 400 naming the field, and no job ------------------------------
@pytest.fixture
def valid_spec(api, owner, workspace):
    response = api(owner).post(
        f"/api/v1/workspaces/{workspace.pk}/environments/",
        {"name": "plain", "base": "python", "requirements": ""},
        format="json",
    )
    assert response.status_code == 201, response.content
    return {
        "code_snapshot_id": upload(api, owner, workspace, {"hi.py": HELLO_PY})["id"],
        "command": "python hi.py ${{inputs.who}} ${{outputs.out}}",
        "environment_version_id": response.json()["latest_version_id"],
        "inputs": {"who": "ünï dé"},
        "outputs": {"out": "folder"},
    }


@pytest.mark.parametrize(
    ("change", "extra", "field"),
    [
        ({"command": ""}, {}, "command"),
        ({"command": "python hi.py " + "x" * 10_000}, {}, "command"),
        ({"command": "python hi.py\x00 rm"}, {}, "command"),
        ({"command": "python hi.py ${{inputs.nope}}"}, {}, "command"),
        ({"command": "python hi.py ${{ inputs.who"}, {}, "command"),
        ({"env": {"STUDIO_JOB_ID": "7"}}, {}, "env"),
        ({"env": {"1 BAD": "x"}}, {}, "env"),
        ({"env": {"N": 5}}, {}, "env"),
        ({"env": {"K": "v"}, "secret_env": {"K": "s"}}, {}, "secret_env"),
        ({"inputs": {"bad name": 1}}, {}, "inputs"),
        ({"inputs": {"who": {"type": "data", "data_version_id": "1; DROP TABLE"}}}, {}, "inputs"),
        ({"inputs": {"who": {"type": "integer", "value": 1.5}}}, {}, "inputs"),
        ({"outputs": {"out": "pickle"}}, {}, "outputs"),
        ({"network": "yes"}, {}, "network"),
        ({"code_snapshot_id": True}, {}, "code_snapshot_id"),
        ({"environment_version_id": -1}, {}, "environment_version_id"),
        ({}, {"time_limit_seconds": 0}, "time_limit_seconds"),
        ({}, {"time_limit_seconds": "3 s"}, "time_limit_seconds"),
        ({}, {"time_limit_seconds": 10**12}, "time_limit_seconds"),
    ],
)
def test_a_hostile_command_job_is_a_400_naming_the_field_and_no_job(
    api, owner, workspace, cluster, valid_spec, change, extra, field
):
    response = submit(api, owner, workspace, cluster, {**valid_spec, **change}, **extra)
    assert response.status_code == 400, (response.status_code, response.content)
    assert field in response.json()["error"]["fields"], response.json()
    assert not Job.objects.exists()


def test_a_spec_that_is_not_an_object_is_a_400(api, owner, workspace, cluster):
    response = submit(api, owner, workspace, cluster, ["python", "hi.py"])
    assert response.status_code == 400 and not Job.objects.exists(), response.content
