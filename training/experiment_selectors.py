"""Reads of an experiment's runs: the run table (user-chosen metric and parameter columns, sorted by
any of them) and the compare view (metric histories overlaid, parameters side by side).

A run is a job of the experiment, whatever its kind; runs deleted through the MLflow API
(`deleted_at`) are left out. Latest metric values come from `LatestMetric` (one row per job and
metric), so a page costs the same few queries whatever its size, and sorting by a metric is one
correlated subquery on the (job, name) unique index.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Now
from django.http import Http404

from compute.jobs.models import Job, JobParam, LatestMetric, Metric
from studio.ids import parse_id
from workspaces.models import Workspace

from .models import Experiment

RUNS_PER_PAGE = 50
MAX_COLUMNS = 20  # chosen metric plus parameter columns of a run table
MAX_COLUMN_CHOICES = 500  # metric names or parameter keys offered by the column picker
MAX_COMPARE_RUNS = 10
MAX_POINTS = 500  # per run and metric on a compare chart; longer histories are downsampled
MAX_COMPARE_METRICS = 30
DEFAULT_SORT = "-created"
# sort key → the field or annotation it orders by
RUN_SORTS = {
    "name": "display_name",
    "status": "status",
    "kind": "kind",
    "created": "created_at",
    "duration": "duration",
}
METRIC_PREFIX, PARAM_PREFIX = "metrics.", "params."
_RUN_FILTER = Q(jobs__deleted_at__isnull=True, jobs__parent__isnull=True)


def experiment_list_with_runs(*, workspace: Workspace) -> QuerySet[Experiment]:
    """The workspace's experiments by name, each with its number of top-level runs and when the
    last one was created (deleted runs not counted)."""
    return (
        Experiment.objects.filter(workspace=workspace)
        .annotate(run_count=Count("jobs", filter=_RUN_FILTER), last_run_at=Max("jobs__created_at", filter=_RUN_FILTER))
        .order_by("name", "id")
    )


def experiment_get(*, workspace: Workspace, experiment_id) -> Experiment:
    """One experiment of the workspace, or 404 (another workspace's id is not found either)."""
    pk = parse_id(experiment_id)
    experiment = Experiment.objects.filter(workspace=workspace, pk=pk).first() if pk is not None else None
    if experiment is None:
        raise Http404("Experiment not found.")
    return experiment


def experiment_runs_all(*, experiment: Experiment, trials: bool = False) -> QuerySet[Job]:
    """The experiment's runs that are not deleted; Automated ML trials (child jobs) only if asked."""
    jobs = Job.objects.filter(workspace_id=experiment.workspace_id, experiment=experiment, deleted_at__isnull=True)
    return jobs if trials else jobs.filter(parent__isnull=True)


def run_columns(*, experiment: Experiment, trials: bool = False) -> tuple[list[str], list[str]]:
    """The metric names and parameter keys present in the experiment's runs, sorted (two queries)."""
    runs = experiment_runs_all(experiment=experiment, trials=trials).values("pk")
    metrics = (LatestMetric.objects.filter(job__in=runs).order_by("name").values_list("name", flat=True).distinct())[
        :MAX_COLUMN_CHOICES
    ]
    params = (JobParam.objects.filter(job__in=runs).order_by("key").values_list("key", flat=True).distinct())[
        :MAX_COLUMN_CHOICES
    ]
    return list(metrics), list(params)


@dataclass(frozen=True)
class RunSort:
    """A parsed `sort`: a column (a RUN_SORTS key, `metrics.<name>` or `params.<key>`) and a direction."""

    column: str
    descending: bool

    @property
    def value(self) -> str:
        return ("-" if self.descending else "") + self.column

    def toggled(self, column: str) -> str:
        """The `sort` value a click on `column`'s header asks for."""
        return ("" if column == self.column and self.descending else "-") + column


def run_sort_parse(value: str | None) -> RunSort:
    """`-metrics.rmse` → RunSort("metrics.rmse", True); an unknown column is a ValidationError on `sort`."""
    value = (value or "").strip() or DEFAULT_SORT
    descending = value.startswith("-")
    column = value[1:] if descending else value
    known = column in RUN_SORTS or (
        column.startswith((METRIC_PREFIX, PARAM_PREFIX)) and 0 < len(column.split(".", 1)[1]) <= 250
    )
    if not known:
        choices = ", ".join(RUN_SORTS)
        raise ValidationError(
            {"sort": f"Sort by one of {choices}, metrics.<name> or params.<key> (a leading - for descending)."}
        )
    return RunSort(column=column, descending=descending)


def experiment_runs(*, experiment: Experiment, sort: RunSort, trials: bool = False) -> QuerySet[Job]:
    """The experiment's runs ordered by `sort` (empty values last, either way), then newest first,
    with what the table shows joined in. Attach the chosen columns' values to a page with
    `runs_attach_values`."""
    jobs = (
        experiment_runs_all(experiment=experiment, trials=trials)
        .select_related("target", "submitted_by", "experiment")
        .annotate(
            duration=ExpressionWrapper(Coalesce("finished_at", Now()) - F("running_at"), output_field=DurationField())
        )
    )
    if sort.column.startswith(METRIC_PREFIX):
        name = sort.column.removeprefix(METRIC_PREFIX)
        latest = LatestMetric.objects.filter(job=OuterRef("pk"), name=name).values("value")[:1]
        jobs, key = jobs.annotate(sort_value=Subquery(latest)), "sort_value"
    elif sort.column.startswith(PARAM_PREFIX):
        key_name = sort.column.removeprefix(PARAM_PREFIX)
        param = JobParam.objects.filter(job=OuterRef("pk"), key=key_name).values("value")[:1]
        jobs, key = jobs.annotate(sort_value=Subquery(param)), "sort_value"
    else:
        key = RUN_SORTS[sort.column]
    order = F(key).desc(nulls_last=True) if sort.descending else F(key).asc(nulls_last=True)
    return jobs.order_by(order, "-created_at", "-id")


def run_columns_chosen(requested, available: list[str]) -> list[str]:
    """The requested columns that exist, in the order asked, without repeats, at most MAX_COLUMNS."""
    known = set(available)
    return list(dict.fromkeys(name for name in requested if name in known))[:MAX_COLUMNS]


def runs_attach_values(jobs, *, metrics: list[str], params: list[str]) -> list[Job]:
    """Set `job.metric_values` and `job.param_values` (lists in the columns' order, None where a
    run has none) on a page of runs: two queries whatever the page's size."""
    jobs = list(jobs)
    ids = [job.pk for job in jobs]
    latest = {}
    if metrics and ids:
        rows = LatestMetric.objects.filter(job_id__in=ids, name__in=metrics).values_list("job_id", "name", "value")
        latest = {(job_id, name): value for job_id, name, value in rows}
    values = {}
    if params and ids:
        rows = JobParam.objects.filter(job_id__in=ids, key__in=params).values_list("job_id", "key", "value")
        values = {(job_id, key): value for job_id, key, value in rows}
    for job in jobs:
        job.metric_values = [latest.get((job.pk, name)) for name in metrics]
        job.param_values = [values.get((job.pk, key)) for key in params]
        job.metric_map = dict(zip(metrics, job.metric_values, strict=True))
        job.param_map = dict(zip(params, job.param_values, strict=True))
    return jobs


# --- Compare ------------------------------------------------------------------------------------
@dataclass
class RunComparison:
    """What the compare view shows for a few runs of one experiment."""

    runs: list[Job]
    # metric name → {run id: (steps, times, values)}, each downsampled to MAX_POINTS
    histories: dict[str, dict[int, tuple[list[int], list[datetime], list[float]]]] = field(default_factory=dict)
    # (key, [value per run], differs)
    params: list[tuple[str, list, bool]] = field(default_factory=list)
    # (metric name, [latest value per run])
    latest: list[tuple[str, list]] = field(default_factory=list)

    @property
    def any_active(self) -> bool:
        return any(run.is_active for run in self.runs)


def compare_runs(*, experiment: Experiment, ids) -> list[Job]:
    """The chosen runs (at most MAX_COMPARE_RUNS, in the order given) of the experiment; 404 if one
    is not a run of it (another experiment's, another workspace's, deleted)."""
    wanted = list(dict.fromkeys(pk for pk in map(parse_id, ids) if pk is not None))
    if not wanted or len(wanted) != len(list(ids)):
        raise Http404("Run not found.")
    if len(wanted) > MAX_COMPARE_RUNS:
        raise ValidationError({"ids": f"Compare at most {MAX_COMPARE_RUNS} runs at a time."})
    found = {
        job.pk: job
        for job in experiment_runs_all(experiment=experiment, trials=True)
        .filter(pk__in=wanted)
        .select_related("target", "experiment")
    }
    if len(found) != len(wanted):
        raise Http404("Run not found.")
    return [found[pk] for pk in wanted]


def downsample(points: list, limit: int = MAX_POINTS) -> list:
    """At most `limit` points spread evenly over the history, the first and last kept."""
    if len(points) <= limit:
        return points
    last = len(points) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [points[i] for i in picks]


def run_comparison(*, runs: list[Job]) -> RunComparison:
    """Histories, latest values and parameters of `runs` (four queries)."""
    ids = [run.pk for run in runs]
    comparison = RunComparison(runs=runs)
    names = list(
        LatestMetric.objects.filter(job_id__in=ids)
        .order_by("name")
        .values_list("name", flat=True)
        .distinct()[:MAX_COMPARE_METRICS]
    )
    series: dict[tuple[str, int], list] = {}
    rows = (
        Metric.objects.filter(job_id__in=ids, name__in=names)
        .order_by("name", "job_id", "step", "at", "id")
        .values_list("name", "job_id", "step", "at", "value")
        .iterator(chunk_size=5000)
    )
    for name, job_id, step, at, value in rows:
        series.setdefault((name, job_id), []).append((step, at, value))
    for name in names:
        per_run = {}
        for run in runs:
            points = downsample(series.get((name, run.pk), []))
            if points:
                steps, times, values = (list(column) for column in zip(*points, strict=True))
                per_run[run.pk] = (steps, times, values)
        comparison.histories[name] = per_run
    latest = {
        (job_id, name): value
        for job_id, name, value in LatestMetric.objects.filter(job_id__in=ids, name__in=names).values_list(
            "job_id", "name", "value"
        )
    }
    comparison.latest = [(name, [latest.get((run.pk, name)) for run in runs]) for name in names]
    params: dict[str, dict[int, str]] = {}
    for job_id, key, value in (
        JobParam.objects.filter(job_id__in=ids).order_by("key").values_list("job_id", "key", "value")
    ):
        params.setdefault(key, {})[job_id] = value
    for key, per_run in params.items():
        values = [per_run.get(run.pk) for run in runs]
        comparison.params.append((key, values, len(set(values)) > 1))
    return comparison
