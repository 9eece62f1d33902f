"""Read queries for jobs, experiments and their outputs, scoped to one workspace."""

import json

from django.db.models import Q, QuerySet
from django.http import Http404

from studio.ids import parse_id
from workspaces.models import Workspace

from .models import Artifact, Job, JobEvent, JobLogLine, JobStatus, Metric
from .recovery import job_artifact_dir

JOB_FILTERS = ("status", "kind", "experiment", "target", "q", "parent")


def job_list(*, workspace: Workspace, filters: dict | None = None) -> QuerySet[Job]:
    """Jobs newest first with what a list shows joined in (a fixed number of queries per page).

    Filters: status, kind, experiment (id), target (id), q (name or id), parent (id, or "none"
    for top-level jobs only).
    """
    filters = filters or {}
    jobs = Job.objects.filter(workspace=workspace).select_related(
        "target", "node", "experiment", "submitted_by", "data_version", "data_version__asset"
    )
    if filters.get("status") in JobStatus.values:
        jobs = jobs.filter(status=filters["status"])
    if filters.get("kind"):
        jobs = jobs.filter(kind=filters["kind"])
    for key in ("experiment", "target"):
        if (value := parse_id(filters.get(key))) is not None:
            jobs = jobs.filter(**{f"{key}_id": value})
    parent = filters.get("parent")
    if parent == "none":
        jobs = jobs.filter(parent__isnull=True)
    elif (parent_id := parse_id(parent)) is not None:
        jobs = jobs.filter(parent_id=parent_id)
    q = (filters.get("q") or "").strip()
    if q:
        condition = Q(display_name__icontains=q) | Q(status_reason__icontains=q)
        if (job_id := parse_id(q.lstrip("#"))) is not None:
            condition |= Q(pk=job_id)
        jobs = jobs.filter(condition)
    return jobs.order_by("-created_at", "-id")


def job_get(*, workspace: Workspace, job_id) -> Job:
    try:
        return job_list(workspace=workspace).get(pk=int(job_id))
    except (Job.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Job not found.") from None


def job_events(*, job: Job) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job).select_related("node").order_by("at", "id")


def job_log(*, job: Job, after: int = 0, limit: int = 2000) -> list[JobLogLine]:
    after = min(after, 2**62)  # a client's huge cursor means "nothing newer", not a database overflow
    return list(JobLogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit])


def job_metrics(*, jobs) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """{job id: {metric name: [(step, value), ...]}} for one or several jobs, in one query."""
    series: dict[int, dict[str, list[tuple[int, float]]]] = {}
    for job_id, name, step, value in (
        Metric.objects.filter(job__in=jobs)
        .order_by("job_id", "name", "step")
        .values_list("job_id", "name", "step", "value")
    ):
        series.setdefault(job_id, {}).setdefault(name, []).append((step, value))
    return series


def job_artifacts(*, job: Job) -> QuerySet[Artifact]:
    return Artifact.objects.filter(job=job).order_by("name")


def artifact_get(*, job: Job, artifact_id) -> Artifact:
    try:
        return job_artifacts(job=job).get(pk=int(artifact_id))
    except (Artifact.DoesNotExist, TypeError, ValueError, OverflowError):
        raise Http404("Artifact not found.") from None


def job_json_artifact(*, job: Job, name: str):
    """A JSON file the job wrote (charts, importance, reports), parsed; None when missing or unreadable."""
    try:
        return json.loads((job_artifact_dir(job) / name).read_text())
    except (OSError, ValueError):
        return None
