"""Jobs: submit, claim, run, finish, cancel, retry, delete, and the reconciler that loses none.

The database is the truth; a Celery message carrying only the job id is a wake-up (R7). A worker
claims a job with a compare-and-set, and every write after that is fenced by the attempt number,
so a redelivered message never runs a job twice and a paused "zombie" worker changes nothing.
"""

import shutil
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from workspaces.models import Workspace
from workspaces.policy import Action, require
from workspaces.services import activity_record, workspace_storage_check

from ..models import ComputeTarget, Node, NodeStatus, TargetKind
from ..services import heartbeat_timeout, node_mark_busy, node_mark_idle, nodes_reap
from .kinds import handler_for, job_references
from .models import Job, JobEvent, JobStatus
from .recovery import job_artifact_dir, job_event_record, job_publish, job_requeue_or_fail
from .tokens import job_tokens_revoke

DEFAULT_EXPERIMENT = "Default"


def _experiment(*, actor, workspace: Workspace, name: str | None):
    """The experiment (training's grouping of runs) a new top-level job joins, through the job's
    own reference, so the engine imports nothing from training."""
    name = (name or DEFAULT_EXPERIMENT).strip()[:100] or DEFAULT_EXPERIMENT
    experiment_model = Job._meta.get_field("experiment").related_model
    experiment, _ = experiment_model.objects.get_or_create(
        workspace=workspace, name=name, defaults={"created_by": actor}
    )
    return experiment


def _check_target(*, actor, workspace: Workspace, target: ComputeTarget) -> None:
    if target is None or target.workspace_id != workspace.pk:
        raise ValidationError(
            {"target": ValidationError("Choose a compute target of this workspace.", code="not_found")}
        )
    if not target.runs_jobs:
        raise ValidationError({"target": [f"{target.name} is an inference cluster: it serves endpoints, not jobs."]})
    if target.kind == TargetKind.INSTANCE and target.owner_id != getattr(actor, "pk", None):
        raise ValidationError({"target": [f"{target.name} is another user's compute instance."]})


def job_submit(
    *,
    actor,
    workspace: Workspace,
    kind: str,
    target: ComputeTarget,
    spec: dict,
    experiment_name: str | None = None,
    display_name: str = "",
    parent: Job | None = None,
    time_limit_seconds: int | None = None,
    max_attempts: int | None = None,
) -> Job:
    """Queue a job on a compute target. The message is sent when the transaction commits.
    Refused while the workspace's storage is full (an ingest's upload was admitted already)."""
    require(actor, workspace, Action.WRITE)
    _check_target(actor=actor, workspace=workspace, target=target)
    if handler_for(kind).checks_storage_quota:
        workspace_storage_check(workspace=workspace)
    return _job_create(
        actor=actor,
        workspace=workspace,
        kind=kind,
        target=target,
        spec=spec,
        experiment_name=experiment_name,
        display_name=display_name,
        parent=parent,
        time_limit_seconds=time_limit_seconds,
        max_attempts=max_attempts,
    )


def child_job_submit(
    *,
    parent: Job,
    kind: str,
    spec: dict,
    display_name: str = "",
    time_limit_seconds: int | None = None,
    max_attempts: int = 2,
) -> Job:
    """Queue a job that a running parent makes (an Automated ML trial), on the parent's target.
    The parent's submission was authorised; its children are not checked again."""
    if parent.target is None:
        raise ValidationError("The run's compute target was deleted.")
    return _job_create(
        actor=parent.submitted_by,
        workspace=parent.workspace,
        kind=kind,
        target=parent.target,
        spec=spec,
        experiment_name=None,
        display_name=display_name,
        parent=parent,
        time_limit_seconds=time_limit_seconds,
        max_attempts=max_attempts,
    )


def _job_create(
    *, actor, workspace, kind, target, spec, experiment_name, display_name, parent, time_limit_seconds, max_attempts
) -> Job:
    handler = handler_for(kind)
    clean = handler.validate(workspace=workspace, spec=spec)
    if time_limit_seconds is not None and not 1 <= time_limit_seconds <= settings.JOB_TIME_LIMIT_SECONDS:
        raise ValidationError({"time_limit_seconds": [f"Give 1 to {settings.JOB_TIME_LIMIT_SECONDS} seconds."]})
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.create(
            workspace=workspace,
            experiment=_experiment(actor=actor, workspace=workspace, name=experiment_name)
            if parent is None
            else parent.experiment,
            parent=parent,
            kind=kind,
            display_name=(display_name or "")[:200],
            target=target,
            spec=clean.spec,
            data_version=clean.data_version,
            submitted_by=actor if getattr(actor, "is_authenticated", False) else None,
            time_limit_seconds=time_limit_seconds or settings.STUDIO_JOB_DEFAULT_TIME_LIMIT,
            max_attempts=max_attempts or settings.STUDIO_JOB_MAX_ATTEMPTS,
            queued_at=now,
            status_reason=_queued_reason(target),
        )
        job_event_record(job, JobStatus.QUEUED, job.status_reason)
        if parent is None:
            activity_record(
                workspace=workspace,
                actor=actor,
                verb="job_submitted",
                summary=f"{actor} submitted {job.name} to {target.name}",
            )
        transaction.on_commit(lambda: job_publish(job_id=job.pk))
    return job


def _queued_reason(target: ComputeTarget) -> str:
    idle = target.nodes.filter(status=NodeStatus.IDLE).exists()
    if idle:
        return f"waiting for an idle node of {target.name}"
    if target.kind == TargetKind.INSTANCE and not target.instance_running:
        return f"waiting for the compute instance {target.name} to be started"
    if target.kind == TargetKind.ATTACHED:
        return f"waiting for a machine of {target.name} to join"
    live = target.nodes.filter(status__in=NodeStatus.live()).count()
    if live >= target.max_nodes:
        return f"all {target.max_nodes} nodes of {target.name} are busy"
    return f"waiting for a node of {target.name} to start"


# --- Worker side: claim, run, finish (every write fenced by the attempt) -------------------------
def job_claim(*, job_id: int, node_id: int | None) -> Job | None:
    """Compare-and-set QUEUED → STARTING on this node. None if the job is not (or no longer)
    queued: a duplicate delivery, a canceled job, a job another node took — or if the node is
    being stopped (it would only have to hand the job back)."""
    if node_id and not Node.objects.filter(pk=node_id, status__in=NodeStatus.taking_jobs()).exists():
        return None  # the job stays QUEUED; its message was sent again when it was handed back
    now = timezone.now()
    with transaction.atomic():
        claimed = Job.objects.filter(
            pk=job_id, status=JobStatus.QUEUED, cancel_requested_at__isnull=True, attempt__lt=F("max_attempts")
        ).update(
            status=JobStatus.STARTING,
            attempt=F("attempt") + 1,
            node_id=node_id,
            started_at=now,
            heartbeat_at=now,
            running_at=None,
            finished_at=None,
            error="",
            status_reason="preparing on its node",
        )
        if not claimed:
            return None
        job = Job.objects.select_related("target", "workspace").get(pk=job_id)
        node_name = f"node-{node_id}" if node_id else "the system worker"
        job_event_record(
            job, JobStatus.STARTING, f"claimed by {node_name} (attempt {job.attempt} of {job.max_attempts})", node_id
        )
        if node_id:
            node_mark_busy(node_id=node_id)
    return job


def _fenced(job: Job):
    return Job.objects.filter(pk=job.pk, attempt=job.attempt, status__in=JobStatus.on_node(), detached=False)


def job_mark_running(*, job: Job, reason: str = "running") -> bool:
    now = timezone.now()
    with transaction.atomic():
        if not _fenced(job).update(status=JobStatus.RUNNING, running_at=now, heartbeat_at=now, status_reason=reason):
            return False
        job.status = JobStatus.RUNNING
        job_event_record(job, JobStatus.RUNNING, reason, job.node_id)
    return True


def job_heartbeat(*, job: Job) -> tuple[bool, bool]:
    """(still mine, cancel requested). A job that is no longer this attempt's must stop."""
    mine = _fenced(job).update(heartbeat_at=timezone.now())
    cancel = mine and Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists()
    return bool(mine), bool(cancel)


def _finish(job: Job, status: str, reason: str, *, result: dict | None = None, error: str = "") -> bool:
    now = timezone.now()
    fields = {"status": status, "finished_at": now, "status_reason": reason[:500], "heartbeat_at": now}
    if result is not None:
        fields["result"] = result
    if error:
        fields["error"] = error
    with transaction.atomic():
        if not _fenced(job).update(**fields):
            return False  # not ours any more: a zombie's late write changes nothing
        job.status = status
        job_event_record(job, status, reason, job.node_id)
        job_tokens_revoke(job=job)  # every kind's: the job's own code loses its access as it ends
        if job.node_id:
            node_mark_idle(node_id=job.node_id)
    transaction.on_commit(lambda: handler_for(job.kind).on_finished(job_id=job.pk, status=status))
    return True


def job_complete(*, job: Job, result: dict) -> bool:
    return _finish(job, JobStatus.COMPLETED, "completed", result=result)


def job_fail(*, job: Job, error: str, reason: str | None = None) -> bool:
    return _finish(
        job, JobStatus.FAILED, reason or f"failed: {error.splitlines()[0][:300] if error else 'error'}", error=error
    )


def job_finish_canceled(*, job: Job) -> bool:
    return _finish(job, JobStatus.CANCELED, "canceled while running; its node was freed")


def job_detach(*, job: Job, result: dict, reason: str) -> bool:
    """The job's node work is done but the job goes on (its children run): free the node, keep
    RUNNING without one. The reconciler leaves detached jobs alone; their children drive them."""
    with transaction.atomic():
        if not _fenced(job).update(
            detached=True,
            node=None,
            heartbeat_at=None,
            result=result,
            status=JobStatus.RUNNING,
            status_reason=reason[:500],
        ):
            return False
        job_event_record(job, JobStatus.RUNNING, reason, job.node_id)
        if job.node_id:
            node_mark_idle(node_id=job.node_id)
    return True


def job_detached_finish(*, job_id: int, status: str, reason: str, result: dict | None = None, error: str = "") -> bool:
    """Finish a detached job (called when its children are done)."""
    now = timezone.now()
    fields = {"status": status, "finished_at": now, "status_reason": reason[:500], "detached": False}
    if result is not None:
        fields["result"] = result
    if error:
        fields["error"] = error
    with transaction.atomic():
        if not Job.objects.filter(pk=job_id, detached=True, status=JobStatus.RUNNING).update(**fields):
            return False
        job = Job.objects.get(pk=job_id)
        job_event_record(job, status, reason)
    return True


def job_display_name_set(*, job_id: int, display_name: str) -> None:
    """Rename a job the studio made for the user (an ingest learns its data's name once the form
    that named it has arrived)."""
    Job.objects.filter(pk=job_id).update(display_name=display_name[:200])


# --- User actions ----------------------------------------------------------------------------------
def job_cancel(*, actor, job: Job) -> Job:
    """Cancel: a queued job never starts; a running one is stopped by its node within seconds."""
    require(actor, job.workspace, Action.WRITE)
    now = timezone.now()
    with transaction.atomic():
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELED,
            cancel_requested_at=now,
            finished_at=now,
            status_reason=f"canceled by {actor} before it started",
        ):
            job.refresh_from_db()
            job_event_record(job, JobStatus.CANCELED, job.status_reason)
        elif Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, detached=True).update(
            status=JobStatus.CANCELED,
            cancel_requested_at=now,
            finished_at=now,
            detached=False,
            status_reason=f"canceled by {actor}; finished trials are kept",
        ):
            job.refresh_from_db()
            job_event_record(job, JobStatus.CANCELED, job.status_reason)
        elif Job.objects.filter(pk=job.pk, status__in=JobStatus.on_node()).update(cancel_requested_at=now):
            job.refresh_from_db()
            JobEvent.objects.create(
                job=job,
                status=job.status,
                reason=f"{actor} asked to cancel it",
                attempt=job.attempt,
                node_id=job.node_id,
            )
        else:
            raise ValidationError(
                f"{job.name} has already finished ({job.get_status_display().lower()}).", code="conflict"
            )
        for child in job.children.filter(status__in=JobStatus.active()):
            job_cancel(actor=actor, job=child)
    return job


def child_jobs_stop(*, parent: Job, kind: str, reason: str) -> int:
    """Stop a parent's active children of one kind (trials at the end of a run's time budget):
    queued ones never start, running ones are stopped by their node within a second."""
    now = timezone.now()
    children = Job.objects.filter(parent=parent, kind=kind)
    queued = list(children.filter(status=JobStatus.QUEUED).values_list("pk", flat=True))
    Job.objects.filter(pk__in=queued, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELED, cancel_requested_at=now, finished_at=now, status_reason=reason
    )
    running = children.filter(status__in=JobStatus.on_node(), cancel_requested_at__isnull=True)
    stopped = running.update(cancel_requested_at=now)
    JobEvent.objects.bulk_create(
        JobEvent(job_id=pk, status=JobStatus.CANCELED, reason=reason, attempt=0) for pk in queued
    )
    return len(queued) + stopped


def job_retry(*, actor, job: Job) -> Job:
    """Run a failed or canceled job again, as a new attempt of the same job."""
    require(actor, job.workspace, Action.WRITE)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELED):
        raise ValidationError(
            f"Only failed or canceled jobs can be retried; {job.name} is {job.get_status_display().lower()}.",
            code="conflict",
        )
    if job.target is None:
        raise ValidationError("Its compute target was deleted; clone the job and pick another target.", code="conflict")
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.QUEUED,
            cancel_requested_at=None,
            finished_at=None,
            queued_at=timezone.now(),
            max_attempts=F("attempt") + settings.STUDIO_JOB_MAX_ATTEMPTS,
            node=None,
            status_reason=f"retried by {actor}",
        )
        job.refresh_from_db()
        job_event_record(job, JobStatus.QUEUED, job.status_reason)
        transaction.on_commit(lambda: job_publish(job_id=job.pk))
    return job


def job_delete(*, actor, job: Job) -> int:
    """Delete a finished job with its logs, metrics and files. Returns the bytes freed."""
    require(actor, job.workspace, Action.WRITE)
    if job.is_active:
        raise ValidationError(
            f"{job.name} is {job.get_status_display().lower()}: cancel it before deleting it.", code="conflict"
        )
    refs = job_references(job)
    if refs:
        raise ValidationError(f"{job.name} cannot be deleted: {'; '.join(refs)} refer to it.", code="conflict")
    folders = [job_artifact_dir(job)] + [job_artifact_dir(child) for child in job.children.all()]
    freed = sum(_folder_size(folder) for folder in folders)
    with transaction.atomic():
        name = job.name
        job.delete()
        activity_record(
            workspace=job.workspace,
            actor=actor,
            verb="job_deleted",
            summary=f"{actor} deleted {name} ({freed:,} bytes freed)",
        )
        transaction.on_commit(lambda: [shutil.rmtree(folder, ignore_errors=True) for folder in folders])
    return freed


def _folder_size(folder) -> int:
    if not folder.exists():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def jobs_reconcile(*, now=None) -> dict:
    """One pass of the reconciler (periodic):

    - RUNNING/STARTING jobs whose heartbeat is stale — COALESCE(heartbeat_at, started_at), so a
      job that never heartbeated is caught too — go back to the queue or fail ("worker lost");
    - nodes that stopped heartbeating are declared lost;
    - QUEUED jobs whose message may have been lost (a Redis restart, a broker down at submit
      time) are published again when their target has an idle node: duplicates are harmless.
    """
    now = now or timezone.now()
    stale_cutoff = now - heartbeat_timeout()
    stale = Job.objects.annotate(last_sign=Coalesce("heartbeat_at", "started_at")).filter(
        status__in=JobStatus.on_node(), last_sign__lt=stale_cutoff, detached=False
    )
    requeued = 0
    for job in stale:
        job_requeue_or_fail(job, "its worker stopped heartbeating")
        requeued += 1
    lost_nodes = nodes_reap(now=now)
    republish_cutoff = now - timedelta(seconds=settings.STUDIO_REPUBLISH_AFTER)
    waiting = Job.objects.filter(status=JobStatus.QUEUED).filter(
        Q(published_at__lt=republish_cutoff) | Q(published_at__isnull=True)
    )
    republished = 0
    targets_with_idle = set(
        Node.objects.filter(status=NodeStatus.IDLE, last_heartbeat_at__gte=stale_cutoff).values_list(
            "target_id", flat=True
        )
    )
    for job_id, target_id in waiting.values_list("pk", "target_id"):
        if target_id in targets_with_idle:
            job_publish(job_id=job_id)
            republished += 1
    # Detached jobs (Automated ML runs) move on when a child finishes; one whose children are all
    # done and that did not move (a failure between two steps) is nudged again.
    nudged = 0
    stuck = Job.objects.filter(status=JobStatus.RUNNING, detached=True).exclude(children__status__in=JobStatus.active())
    for job in stuck.distinct():
        handler_for(job.kind).on_detached(job_id=job.pk)
        nudged += 1
    return {"requeued": requeued, "lost_nodes": lost_nodes, "republished": republished, "nudged": nudged}
