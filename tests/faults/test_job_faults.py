"""Faults with real processes: kill -9 a node, restart Redis, a burst of jobs (RELIABILITY.md)."""

import os
import signal
import subprocess
import time

import pytest

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobEvent, JobStatus
from compute.jobs.services import job_submit
from compute.models import Node, NodeStatus, TargetKind
from compute.services import target_create
from tests.conftest import REDIS_URL, node_log, redis_available, require_service, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.faults]


def make_cluster(owner, workspace, **kwargs):
    options = {"min_nodes": 0, "max_nodes": 2, "idle_seconds_before_scaledown": 30} | kwargs
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="faulty", **options).target


def submit(owner, workspace, cluster, **kwargs):
    spec = kwargs.pop("spec", {})
    return job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec=spec, **kwargs)


def kill_node(node):
    node.refresh_from_db()
    os.killpg(node.pid, signal.SIGKILL)


def test_kill_9_of_a_node_mid_job_requeues_the_job_and_it_completes_on_another_node(
    owner, workspace, agent, reconciler, broker, studio_data_dir
):
    cluster = make_cluster(owner, workspace, max_nodes=2)
    job = submit(owner, workspace, cluster, spec={"sleep_seconds": 4})
    running = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).first(), timeout=60, message="the job to run"
    )
    first_node = running.node
    kill_node(first_node)
    done = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(),
        timeout=90,
        message="the job to finish after the kill",
    )
    assert done.status == JobStatus.COMPLETED, (done.status_reason, node_log(studio_data_dir, first_node))
    assert done.attempt == 2 and done.node != first_node
    assert Node.objects.get(pk=first_node.pk).status == NodeStatus.LOST
    reasons = " | ".join(JobEvent.objects.filter(job=job).values_list("reason", flat=True))
    assert "re-queued" in reasons and first_node.name in reasons


def test_a_job_that_keeps_losing_its_node_fails_with_the_reason(owner, workspace, agent, reconciler, broker):
    cluster = make_cluster(owner, workspace, max_nodes=1)
    job = submit(owner, workspace, cluster, spec={"sleep_seconds": 30}, max_attempts=2)
    for attempt in (1, 2):
        running = wait_for(
            lambda a=attempt: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempt=a).first(),
            timeout=60,
            message=f"attempt {attempt} to run",
        )
        kill_node(running.node)
    done = wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(),
        timeout=60,
        message="the job to give up",
    )
    assert done.status == JobStatus.FAILED
    assert "gave up after 2 attempts" in done.status_reason and "Worker lost" in done.error
    assert not Job.objects.filter(status__in=JobStatus.on_node()).exists()  # never left RUNNING


def test_fifty_jobs_at_once_never_push_the_cluster_past_max_nodes(owner, workspace, agent, broker):
    cluster = make_cluster(owner, workspace, max_nodes=2)
    jobs = [submit(owner, workspace, cluster) for _ in range(50)]
    most = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        most = max(most, Node.objects.filter(target=cluster, status__in=NodeStatus.live()).count())
        if not Job.objects.filter(pk__in=[j.pk for j in jobs], status__in=JobStatus.active()).exists():
            break
        time.sleep(0.05)
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.COMPLETED).count() == 50
    assert 1 <= most <= 2
    assert Node.objects.filter(target=cluster).count() <= 2


REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def restart_redis():
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True, timeout=30)
    wait_for(lambda: not redis_available(), timeout=15, message="Redis to stop")
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=30)
    wait_for(redis_available, timeout=15, message="Redis to start")


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_restarting_redis_loses_no_queued_job_and_new_jobs_start_within_30_s(
    owner, workspace, agent, reconciler, broker
):
    require_service(
        subprocess.run(["which", "redis-server"], capture_output=True).returncode == 0,
        "redis-server is not installed here",
    )
    cluster = make_cluster(owner, workspace, max_nodes=1)
    blocker = submit(owner, workspace, cluster, spec={"sleep_seconds": 3})
    wait_for(lambda: Job.objects.filter(pk=blocker.pk, status=JobStatus.RUNNING).exists(), timeout=60, message="run")
    queued = [submit(owner, workspace, cluster) for _ in range(5)]
    restart_redis()  # the 5 queued messages are gone with it (it keeps nothing on disk)
    after = time.monotonic()
    fresh = submit(owner, workspace, cluster)
    wait_for(
        lambda: Job.objects.filter(pk=fresh.pk, running_at__isnull=False).exists(),
        timeout=30,
        message=f"a new job to start within 30 s after the restart ({REDIS_URL})",
    )
    started_in = time.monotonic() - after
    ids = [j.pk for j in queued + [blocker, fresh]]
    wait_for(
        lambda: Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == len(ids),
        timeout=90,
        message="every queued job to complete",
    )
    assert started_in < 30
