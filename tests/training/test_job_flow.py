"""A job's whole life on real node processes started by the real agent, through both brokers."""

import pytest

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobEvent, JobStatus
from compute.jobs.recovery import job_publish
from compute.jobs.services import job_cancel, job_submit
from compute.models import Node, NodeSession, NodeStatus, TargetKind
from compute.services import target_create
from tests.conftest import node_log, wait_for

pytestmark = [pytest.mark.worker]


@pytest.fixture
def cluster(owner, workspace):
    return target_create(
        actor=owner,
        workspace=workspace,
        kind=TargetKind.CLUSTER,
        name="cpu",
        min_nodes=0,
        max_nodes=2,
        idle_seconds_before_scaledown=1,
    ).target


@pytest.fixture
def one_node(owner, workspace):
    return target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="one", min_nodes=0, max_nodes=1
    ).target


def diagnostic(owner, workspace, cluster, **spec):
    return job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec=spec)


def finished(job, timeout=60):
    return wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=JobStatus.finished()).first(),
        timeout=timeout,
        message=f"job {job.pk} to finish (now {Job.objects.get(pk=job.pk).status})",
    )


def assert_took_the_next_job(stopped, second):
    """The node whose job process was stopped ran the next job. It is the only node (a one-node
    cluster), so no fresh node could have taken it instead."""
    assert second.node_id == stopped.node_id
    # Generous: ~1-3 s here; how soon is Celery's worker_lost_wait (checked below), not a wall clock.
    assert (second.running_at - stopped.finished_at).total_seconds() < 30


def test_a_node_waits_1_s_not_celerys_10_s_for_a_stopped_job_process():
    """Cancel and the time limit end the job's process; Celery then waits `worker_lost_wait` for a
    result that will never come before the node takes its next job (10 s by default)."""
    from studio.celery import app

    assert app.conf.worker_lost_wait <= 1


def test_a_job_scales_a_cluster_from_zero_runs_and_the_cluster_scales_back_to_zero(
    owner, workspace, cluster, agent, broker, studio_data_dir
):
    job = diagnostic(owner, workspace, cluster)
    done = finished(job)
    node = Node.objects.get(target=cluster)
    assert done.status == JobStatus.COMPLETED, (done.error, node_log(studio_data_dir, node))
    assert done.node == node and done.attempt == 1
    assert done.result["database"] and done.result["artifacts_writable"]
    statuses = list(JobEvent.objects.filter(job=job).values_list("status", flat=True))
    assert statuses == ["queued", "starting", "running", "completed"]
    assert all(JobEvent.objects.filter(job=job).values_list("reason", flat=True))
    assert done.log.filter(text__contains="Node check").exists()
    # idle past its timeout: back to zero nodes, node time metered
    wait_for(
        lambda: Node.objects.filter(pk=node.pk, status=NodeStatus.STOPPED).exists(),
        timeout=30,
        message="the idle node to stop",
    )
    session = NodeSession.objects.get(node=node)
    assert session.ended_at is not None and session.ended_at > session.started_at


def test_a_queued_job_canceled_never_starts(owner, workspace, cluster, broker, transactional_db):
    job = diagnostic(owner, workspace, cluster)
    job_cancel(actor=owner, job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED


def test_cancel_stops_a_running_job_within_5_s_and_frees_its_node(owner, workspace, one_node, agent, broker):
    import time

    job = diagnostic(owner, workspace, one_node, sleep_seconds=60)
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists(), timeout=60, message="running")
    asked = time.monotonic()
    job_cancel(actor=owner, job=job)
    done = finished(job, timeout=10)
    assert done.status == JobStatus.CANCELED
    assert time.monotonic() - asked < 5
    node = done.node
    wait_for(lambda: Node.objects.filter(pk=node.pk, status=NodeStatus.IDLE).exists(), timeout=10, message="node idle")
    second = diagnostic(owner, workspace, one_node)
    second = finished(second)
    assert second.status == JobStatus.COMPLETED
    assert_took_the_next_job(done, second)


def test_a_message_delivered_twice_runs_its_job_once(owner, workspace, cluster, agent, broker):
    job = diagnostic(owner, workspace, cluster, sleep_seconds=1)
    job_publish(job_id=job.pk)
    job_publish(job_id=job.pk)
    done = finished(job)
    assert done.status == JobStatus.COMPLETED and done.attempt == 1
    assert JobEvent.objects.filter(job=job, status=JobStatus.STARTING).count() == 1


def test_a_job_over_its_time_limit_fails_and_the_node_takes_the_next(owner, workspace, one_node, agent, broker):
    job = job_submit(
        actor=owner,
        workspace=workspace,
        kind=DIAGNOSTIC,
        target=one_node,
        spec={"sleep_seconds": 60},
        time_limit_seconds=2,
    )
    done = finished(job, timeout=60)
    assert done.status == JobStatus.FAILED
    assert "time limit" in done.status_reason and "time limit" in done.error
    second = diagnostic(owner, workspace, one_node)
    second = finished(second)
    assert second.status == JobStatus.COMPLETED
    assert_took_the_next_job(done, second)
