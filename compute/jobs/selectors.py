"""Read queries for jobs, experiments and their outputs, scoped to one workspace."""

import json

from django.db.models import Q, QuerySet
from django.http import Http404

from studio.ids import parse_id
from workspaces.models import Workspace

from .models import Artifact, Job, JobEvent, JobLogLine, JobParam, JobStatus, Metric
from .recovery import job_artifact_dir

JOB_FILTERS = ("status", "kind", "experiment", "target", "q", "parent")


def job_list(*, workspace: Workspace, filters: dict | None = None) -> QuerySet[Job]:
    """Jobs newest first with what a list shows joined in (a fixed number of queries per page).

    Filters: status, kind, experiment (id), target (id), q (name or id), parent (id, or "none"
    for top-level jobs only). Runs deleted through the MLflow API are left out (restorable there).
    """
    filters = filters or {}
    jobs = Job.objects.filter(workspace=workspace, deleted_at__isnull=True).select_related(
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


def job_params(job: Job) -> dict[str, str]:
    """The parameters the job's code recorded, {name: value} sorted by name (one query)."""
    return dict(JobParam.objects.filter(job=job).order_by("key").values_list("key", "value"))


def job_data_inputs(job: Job) -> dict[str, int]:
    """{input name: data version id} of the job's spec `inputs` entries of type "data".

    Read defensively: a spec is JSON that older code or other kinds wrote, so an entry of another
    shape is left out, never an error here."""
    inputs = job.spec.get("inputs") if isinstance(job.spec, dict) else None
    if not isinstance(inputs, dict):
        return {}
    found = {}
    for name, entry in inputs.items():
        if not isinstance(entry, dict) or entry.get("type") != "data":
            continue
        version_id = entry.get("data_version_id")
        if isinstance(version_id, int) and not isinstance(version_id, bool) and version_id > 0:
            found[str(name)] = version_id
    return found


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
