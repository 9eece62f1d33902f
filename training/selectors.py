"""Read queries for jobs, experiments and their outputs, scoped to one workspace."""

from django.db.models import Q, QuerySet
from django.http import Http404

from workspaces.models import Workspace

from .models import Artifact, Experiment, Job, JobEvent, JobLogLine, JobStatus, Metric

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
        value = str(filters.get(key) or "")
        if value.isdigit():
            jobs = jobs.filter(**{f"{key}_id": int(value)})
    parent = str(filters.get("parent") or "")
    if parent == "none":
        jobs = jobs.filter(parent__isnull=True)
    elif parent.isdigit():
        jobs = jobs.filter(parent_id=int(parent))
    q = (filters.get("q") or "").strip()
    if q:
        condition = Q(display_name__icontains=q) | Q(status_reason__icontains=q)
        if q.lstrip("#").isdigit():
            condition |= Q(pk=int(q.lstrip("#")))
        jobs = jobs.filter(condition)
    return jobs.order_by("-created_at", "-id")


def job_get(*, workspace: Workspace, job_id) -> Job:
    try:
        return job_list(workspace=workspace).get(pk=int(job_id))
    except (Job.DoesNotExist, TypeError, ValueError):
        raise Http404("Job not found.") from None


def job_events(*, job: Job) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job).select_related("node").order_by("at", "id")


def job_log(*, job: Job, after: int = 0, limit: int = 2000) -> list[JobLogLine]:
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
    except (Artifact.DoesNotExist, TypeError, ValueError):
        raise Http404("Artifact not found.") from None


def experiment_list(*, workspace: Workspace) -> QuerySet[Experiment]:
    return Experiment.objects.filter(workspace=workspace).order_by("name")


def jobs_for_compare(*, workspace: Workspace, ids) -> list[Job]:
    clean = [int(i) for i in ids if str(i).isdigit()][:10]
    jobs = list(job_list(workspace=workspace).filter(pk__in=clean))
    if len(jobs) != len(set(clean)):
        raise Http404("Job not found.")
    return jobs
