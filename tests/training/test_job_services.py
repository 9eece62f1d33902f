"""Job state machine without workers: claim CAS, fenced writes, reconciler, cancel/retry/delete."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from compute.jobs import services
from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobEvent, JobStatus
from compute.models import Node, NodeStatus, TargetKind
from compute.services import target_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(owner, workspace):
    return target_create(actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu").target


@pytest.fixture
def job(owner, workspace, target):
    return services.job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})


def test_a_reader_cannot_submit(reader, workspace, target):
    with pytest.raises(PermissionDenied):
        services.job_submit(actor=reader, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={})


def test_a_job_on_another_workspaces_target_is_refused(owner, workspace, other_workspace, outsider):
    foreign = target_create(actor=outsider, workspace=other_workspace, kind=TargetKind.CLUSTER, name="theirs").target
    with pytest.raises(ValidationError) as exc:
        services.job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=foreign, spec={})
    assert "target" in exc.value.message_dict


def test_bad_specs_are_refused_at_submit(owner, workspace, target):
    with pytest.raises(ValidationError):
        services.job_submit(
            actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=target, spec={"sleep_seconds": "soon"}
        )
    with pytest.raises(ValidationError):
        services.job_submit(actor=owner, workspace=workspace, kind="shell", target=target, spec={})


def test_queued_job_says_why_it_waits(job):
    assert "waiting for a node of cpu to start" in job.status_reason
    assert JobEvent.objects.get(job=job).status == JobStatus.QUEUED


def test_claim_is_a_compare_and_set(job):
    first = services.job_claim(job_id=job.pk, node_id=None)
    assert first is not None and first.attempt == 1 and first.status == JobStatus.STARTING
    assert services.job_claim(job_id=job.pk, node_id=None) is None  # a duplicate delivery does nothing


def test_a_zombie_attempt_cannot_finish_the_job(job):
    zombie = services.job_claim(job_id=job.pk, node_id=None)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)  # the reconciler re-queued it
    current = services.job_claim(job_id=job.pk, node_id=None)
    assert current.attempt == 2
    assert not services.job_complete(job=zombie, result={"from": "zombie"})
    assert services.job_complete(job=current, result={"from": "current"})
    job.refresh_from_db()
    assert job.result == {"from": "current"} and job.status == JobStatus.COMPLETED


def test_reconciler_requeues_a_job_that_never_heartbeated(job, settings):
    settings.STUDIO_HEARTBEAT_TIMEOUT = 10
    services.job_claim(job_id=job.pk, node_id=None)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=None, started_at=timezone.now() - timedelta(seconds=60))
    outcome = services.jobs_reconcile()
    job.refresh_from_db()
    assert outcome["requeued"] == 1 and job.status == JobStatus.QUEUED
    assert "stopped heartbeating" in job.status_reason


def test_reconciler_fails_a_job_past_its_attempts(job, settings):
    settings.STUDIO_HEARTBEAT_TIMEOUT = 10
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    services.job_claim(job_id=job.pk, node_id=None)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=60))
    services.jobs_reconcile()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "Worker lost" in job.error


def test_reconciler_republishes_a_queued_job_when_an_idle_node_waits(
    job, target, settings, django_capture_on_commit_callbacks
):
    settings.STUDIO_REPUBLISH_AFTER = 5
    Job.objects.filter(pk=job.pk).update(published_at=timezone.now() - timedelta(seconds=30))
    Node.objects.create(target=target, status=NodeStatus.IDLE, last_heartbeat_at=timezone.now())
    assert services.jobs_reconcile()["republished"] == 1
    job.refresh_from_db()
    assert job.published_at > timezone.now() - timedelta(seconds=5)


def test_cancel_retry_and_delete(owner, job):
    services.job_cancel(actor=owner, job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    with pytest.raises(ValidationError, match="already finished"):
        services.job_cancel(actor=owner, job=job)
    services.job_retry(actor=owner, job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    with pytest.raises(ValidationError, match="cancel it before deleting"):
        services.job_delete(actor=owner, job=job)
    services.job_cancel(actor=owner, job=job)
    folder = services.job_artifact_dir(job)
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(b"x" * 1234)
    assert services.job_delete(actor=owner, job=Job.objects.get(pk=job.pk)) == 1234
    assert not Job.objects.filter(pk=job.pk).exists()


def test_a_reader_cannot_cancel(reader, job):
    with pytest.raises(PermissionDenied):
        services.job_cancel(actor=reader, job=job)
