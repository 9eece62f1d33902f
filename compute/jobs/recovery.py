"""Jobs going back to the queue: publishing a job's wake-up, handing back the jobs of a node that
stops, re-queueing or failing those of a node that was lost. Below both the node services and the
job services, which call it; it imports neither.
"""

import logging

from celery import current_app
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from workspaces.services import workspace_artifact_dir

from ..models import Node
from .kinds import handler_for
from .models import Job, JobEvent, JobStatus

log = logging.getLogger("studio.jobs")

# The task's name (kept from when the engine lived in training/, so messages queued before an
# upgrade still find it); sent by name, so this module does not import the task module.
RUN_JOB_TASK = "training.tasks.run_job_task"


def job_artifact_dir(job: Job):
    """Every file of a job lives here, computed from its row (R1)."""
    return workspace_artifact_dir(job.workspace_id) / "jobs" / str(int(job.pk))


def job_event_record(job: Job, status: str, reason: str, node_id: int | None = None) -> None:
    JobEvent.objects.create(job=job, status=status, reason=reason[:500], attempt=job.attempt, node_id=node_id)


def job_publish(*, job_id: int) -> None:
    """Send the wake-up message for a queued job to its target's queue."""
    job = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).select_related("target").first()
    if job is None or job.target is None:
        return
    Job.objects.filter(pk=job_id).update(published_at=timezone.now())
    try:
        current_app.send_task(RUN_JOB_TASK, args=[job_id], queue=job.target.queue, routing_key=job.target.queue)
    except Exception:  # noqa: BLE001 - the broker may be down; the reconciler sends it again
        log.exception("could not publish job %s; the reconciler will retry", job_id)


# --- Recovery: the reconciler ------------------------------------------------------------------
def job_requeue_or_fail(job: Job, reason: str) -> None:
    """A job whose worker was lost goes back to the queue, or fails past its attempt limit."""
    with transaction.atomic():
        if job.attempt < job.max_attempts:
            moved = Job.objects.filter(pk=job.pk, attempt=job.attempt, status__in=JobStatus.on_node()).update(
                status=JobStatus.QUEUED,
                node=None,
                queued_at=timezone.now(),
                status_reason=f"{reason}; re-queued (attempt {job.attempt} of {job.max_attempts} used)",
            )
            if moved:
                job.refresh_from_db()
                job_event_record(job, JobStatus.QUEUED, job.status_reason)
                transaction.on_commit(lambda: job_publish(job_id=job.pk))
        else:
            now = timezone.now()
            moved = Job.objects.filter(pk=job.pk, attempt=job.attempt, status__in=JobStatus.on_node()).update(
                status=JobStatus.FAILED,
                finished_at=now,
                status_reason=f"{reason}; gave up after {job.attempt} attempts",
                error=f"Worker lost: {reason}.",
            )
            if moved:
                job.refresh_from_db()
                job_event_record(job, JobStatus.FAILED, job.status_reason)
                transaction.on_commit(lambda: handler_for(job.kind).on_finished(job_id=job.pk, status=JobStatus.FAILED))


def jobs_recover_from_lost_node(*, node: Node, reason: str) -> None:
    for job in Job.objects.filter(node=node, status__in=JobStatus.on_node()):
        job_requeue_or_fail(job, f"its node {node.name} was lost ({reason})")


def jobs_hand_back(*, node_id: int, reason: str) -> int:
    """A node stopped on purpose (the studio stopping, the agent stopping the node) hands its
    running jobs back at once: QUEUED again, not RUNNING until the heartbeat times out. The attempt
    the job used is given back (a stop is not the job's failure), and a job someone asked to
    cancel is canceled. Each write is fenced by the attempt: if the job's process still runs, its
    watchdog sees at its next heartbeat that the job is no longer its own and exits."""
    handed = 0
    for job in Job.objects.filter(node_id=node_id, status__in=JobStatus.on_node(), detached=False):
        mine = Job.objects.filter(pk=job.pk, attempt=job.attempt, status__in=JobStatus.on_node(), detached=False)
        now = timezone.now()
        with transaction.atomic():
            if job.cancel_requested_at is not None:
                status, text = JobStatus.CANCELED, f"canceled; {reason}"
                moved = mine.update(status=status, node=None, finished_at=now, status_reason=text[:500])
            else:
                status, text = JobStatus.QUEUED, f"{reason}: handed back and re-queued"
                moved = mine.update(
                    status=status,
                    node=None,
                    queued_at=now,
                    max_attempts=F("max_attempts") + 1,
                    status_reason=text[:500],
                )
            if not moved:
                continue  # it finished or moved on meanwhile
            job.refresh_from_db()
            job_event_record(job, status, text, node_id)
            if status == JobStatus.QUEUED:
                transaction.on_commit(lambda job_id=job.pk: job_publish(job_id=job_id))
            else:
                transaction.on_commit(
                    lambda job=job, status=status: handler_for(job.kind).on_finished(job_id=job.pk, status=status)
                )
        handed += 1
    return handed
