"""Reads of the MLflow tracking API: experiments, runs (every job of the workspace is a run) and
what a page of runs shows (parameters, tags, latest metrics), in a fixed number of queries.

Everything is scoped to `access.workspace`; another workspace's ids are RESOURCE_DOES_NOT_EXIST.
A job's token sees its own run and that run's experiment only.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from compute.jobs.kinds import kind_label
from compute.jobs.models import Job, JobParam, JobStatus, LatestMetric, Metric
from compute.jobs.services import DEFAULT_EXPERIMENT
from training.models import Experiment

from .base import JOB_TOKEN_SCOPE_MESSAGE, TrackingAccess
from .errors import invalid, not_found, permission_denied
from .models import ExperimentTag, RunTag
from .search import ATTRIBUTE, METRIC, PARAM, TAG, Clause, Order, like_regex, parse_filter, parse_order_by

DEFAULT_EXPERIMENT_ID = "0"  # the id the client uses when no experiment is set: the workspace's "Default"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
SEARCH_RUNS_MAX = 50_000
SEARCH_RUNS_DEFAULT = 1000
SEARCH_EXPERIMENTS_MAX = 50_000
SEARCH_EXPERIMENTS_DEFAULT = 1000
HISTORY_MAX = 25_000

# MLflow's run statuses and the job's.
STATUS_TO_MLFLOW = {
    JobStatus.QUEUED: "SCHEDULED",
    JobStatus.STARTING: "SCHEDULED",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.COMPLETED: "FINISHED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "KILLED",
}
MLFLOW_TO_STATUSES = {
    "SCHEDULED": [JobStatus.QUEUED, JobStatus.STARTING],
    "RUNNING": [JobStatus.RUNNING],
    "FINISHED": [JobStatus.COMPLETED],
    "FAILED": [JobStatus.FAILED],
    "KILLED": [JobStatus.CANCELED],
}
ACTIVE_ONLY, DELETED_ONLY, ALL = "ACTIVE_ONLY", "DELETED_ONLY", "ALL"
_VIEW_TYPES = {
    "1": ACTIVE_ONLY,
    "2": DELETED_ONLY,
    "3": ALL,
    ACTIVE_ONLY: ACTIVE_ONLY,
    DELETED_ONLY: DELETED_ONLY,
    ALL: ALL,
}


def parse_int_id(value, *, noun: str) -> int:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise not_found(f"No {noun} with id {str(value)[:50]!r}.")
    return int(text)


def view_type(value) -> str:
    if value in (None, ""):
        return ACTIVE_ONLY
    clean = _VIEW_TYPES.get(str(value).upper())
    if clean is None:
        raise invalid(f"Invalid view type {value!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    return clean


def max_results(value, *, default: int, limit: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid(f"max_results must be a whole number, not {str(value)[:50]!r}.") from None
    if not 1 <= number <= limit:
        raise invalid(f"max_results must be between 1 and {limit}, not {number}.")
    return number


def page_offset(token) -> int:
    """The offset a page token carries (tokens are opaque to the client: base64 of a small JSON)."""
    if token in (None, ""):
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
        raise invalid("Invalid page_token.") from None
    if not isinstance(offset, int) or not 0 <= offset <= 2**31:
        raise invalid("Invalid page_token.")
    return offset


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


# --- Experiments --------------------------------------------------------------------------------
def experiments_of(access: TrackingAccess) -> QuerySet[Experiment]:
    experiments = Experiment.objects.filter(workspace=access.workspace)
    if access.job is not None:
        experiments = experiments.filter(pk=access.job.experiment_id)
    return experiments


def experiment_get(*, access: TrackingAccess, experiment_id, include_deleted: bool = True) -> Experiment:
    """The experiment with this MLflow id ("0": the workspace's Default, made on first use)."""
    if str(experiment_id) == DEFAULT_EXPERIMENT_ID and access.job is None:
        experiment = Experiment.objects.filter(workspace=access.workspace, name=DEFAULT_EXPERIMENT).first()
        if experiment is None:
            experiment, _ = Experiment.objects.get_or_create(
                workspace=access.workspace, name=DEFAULT_EXPERIMENT, defaults={"created_by": access.user}
            )
        return experiment
    pk = parse_int_id(experiment_id, noun="experiment")
    experiment = experiments_of(access).filter(pk=pk).first()
    if experiment is None or (experiment.deleted_at is not None and not include_deleted):
        raise not_found(f"No experiment with id {str(experiment_id)[:50]!r} in this workspace.")
    return experiment


def experiment_get_by_name(*, access: TrackingAccess, name) -> Experiment:
    if not isinstance(name, str) or not name:
        raise invalid("Give the experiment's name (experiment_name).")
    experiment = experiments_of(access).filter(name=name).first()
    if experiment is None:
        raise not_found(f"No experiment named {name[:100]!r} in this workspace.")
    return experiment


_EXPERIMENT_ATTRIBUTES = {
    "name": "name",
    "experiment_id": "experiment_id",
    "creation_time": "creation_time",
    "last_update_time": "creation_time",
}


def experiments_search(*, access: TrackingAccess, filter_string=None, view=None, order_by=None, limit=None, token=None):
    """(experiments of the page with their tags, the next page's token or None)."""
    clauses = parse_filter(filter_string, attributes=_EXPERIMENT_ATTRIBUTES, entities=(ATTRIBUTE, TAG))
    orders = parse_order_by(order_by, attributes=_EXPERIMENT_ATTRIBUTES, entities=(ATTRIBUTE,))
    size = max_results(limit, default=SEARCH_EXPERIMENTS_DEFAULT, limit=SEARCH_EXPERIMENTS_MAX)
    offset = page_offset(token)
    experiments = experiments_of(access)
    experiments = _by_view(experiments, view_type(view))
    for clause in clauses:
        if clause.entity == TAG:
            tags = ExperimentTag.objects.filter(experiment=OuterRef("pk"), key=clause.key)
            experiments = experiments.filter(_text_condition(tags, "value", clause))
        elif clause.key == "name":
            experiments = experiments.filter(_text_q("name", clause))
        elif clause.key == "experiment_id":
            experiments = experiments.filter(_text_q("pk", _as_ids(clause)))
        else:
            experiments = experiments.filter(_number_q("created_at", clause, as_time=True))
    fields = {"name": "name", "experiment_id": "pk", "creation_time": "created_at"}
    ordering = [F(fields[order.key]).asc() if order.ascending else F(fields[order.key]).desc() for order in orders] or [
        F("created_at").desc()
    ]
    page = list(experiments.order_by(*ordering, "-pk").prefetch_related("tags")[offset : offset + size + 1])
    next_token = page_token(offset + size) if len(page) > size else None
    return page[:size], next_token


# --- Runs -----------------------------------------------------------------------------------------
def runs_of(access: TrackingAccess) -> QuerySet[Job]:
    runs = Job.objects.filter(workspace=access.workspace)
    if access.job is not None:
        runs = runs.filter(pk=access.job.pk)
    return runs


# What MLflow shows of a run: a page of 1,000 runs reads only these columns, into plain rows.
RUN_FIELDS = (
    "pk",
    "kind",
    "display_name",
    "status",
    "experiment_id",
    "submitted_by__username",
    "created_at",
    "started_at",
    "finished_at",
    "deleted_at",
)


@dataclass(frozen=True, slots=True)
class RunRow:
    pk: int
    kind: str
    display_name: str
    status: str
    experiment_id: int | None
    username: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deleted_at: datetime | None

    @property
    def name(self) -> str:
        return self.display_name or f"{kind_label(self.kind)} #{self.pk}"


def run_row(run: Job) -> RunRow:
    """The row MLflow shows of a job (fetched with `submitted_by`)."""
    username = run.submitted_by.username if run.submitted_by_id and run.submitted_by else None
    return RunRow(
        run.pk,
        run.kind,
        run.display_name,
        run.status,
        run.experiment_id,
        username,
        run.created_at,
        run.started_at,
        run.finished_at,
        run.deleted_at,
    )


def run_get(*, access: TrackingAccess, run_id) -> Job:
    """The run (a job of the workspace); a job's token may only name its own."""
    pk = parse_int_id(run_id, noun="run")
    if access.job is not None and pk != access.job.pk:
        raise permission_denied(JOB_TOKEN_SCOPE_MESSAGE)
    run = runs_of(access).select_related("submitted_by").filter(pk=pk).first()
    if run is None:
        raise not_found(f"Run {str(run_id)[:50]!r} not found in this workspace.")
    return run


def _by_view(queryset: QuerySet, view: str) -> QuerySet:
    if view == ACTIVE_ONLY:
        return queryset.filter(deleted_at__isnull=True)
    if view == DELETED_ONLY:
        return queryset.filter(deleted_at__isnull=False)
    return queryset


_NUMBER_LOOKUPS = {"=": "exact", "<": "lt", ">": "gt", "<=": "lte", ">=": "gte"}


def _number_q(column: str, clause: Clause, *, as_time: bool = False) -> Q:
    value = clause.value
    if as_time:
        try:
            value = datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise invalid(f"{clause.key} {value!r} is not a time in milliseconds.") from None
    if clause.op == "!=":
        return ~Q(**{column: value}) & Q(**{f"{column}__isnull": False})
    return Q(**{f"{column}__{_NUMBER_LOOKUPS[clause.op]}": value})


def _text_q(column: str, clause: Clause) -> Q:
    value, op = clause.value, clause.op
    if op == "=":
        return Q(**{column: value})
    if op == "!=":
        return ~Q(**{column: value})
    if op in ("LIKE", "ILIKE"):
        lookup = "regex" if op == "LIKE" else "iregex"
        return Q(**{f"{column}__{lookup}": like_regex(value, atomic=connection.vendor == "sqlite")})
    if op == "IN":
        return Q(**{f"{column}__in": list(value)})
    return ~Q(**{f"{column}__in": list(value)})  # NOT IN


def _text_condition(rows: QuerySet, column: str, clause: Clause):
    """A run/experiment has a row (param, tag) whose value matches: for != and NOT IN too, only
    the ones that have the key (as in MLflow)."""
    return Exists(rows.filter(_text_q(column, clause)))


def _as_ids(clause: Clause) -> Clause:
    if clause.op not in ("=", "!=", "IN", "NOT IN"):
        raise invalid(f"Compare {clause.key} with =, !=, IN or NOT IN, not {clause.op}.")
    values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
    ids = tuple(int(v) for v in values if str(v).isascii() and str(v).isdigit() and len(str(v)) <= 18)
    return Clause(clause.entity, clause.key, clause.op, ids if isinstance(clause.value, tuple) else (ids or (-1,))[0])


def _run_attribute_q(clause: Clause) -> Q:
    key = clause.key
    if key in ("start_time", "end_time"):
        return _number_q("_start" if key == "start_time" else "finished_at", clause, as_time=True)
    if key == "run_id":
        return _text_q("pk", _as_ids(clause))
    if key == "run_name":
        return _text_q("display_name", clause)
    if key == "user_id":
        return _text_q("submitted_by__username", clause)
    if key == "status":
        values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
        if clause.op in ("LIKE", "ILIKE"):
            pattern = like_regex(clause.value, atomic=True)
            flags = re.IGNORECASE if clause.op == "ILIKE" else 0
            values = tuple(s for s in MLFLOW_TO_STATUSES if re.match(pattern, s, flags))
        statuses = [status for value in values for status in MLFLOW_TO_STATUSES.get(value, [])]
        negate = clause.op in ("!=", "NOT IN")
        return ~Q(status__in=statuses) if negate else Q(status__in=statuses)
    if key == "lifecycle_stage":
        stage = Q(deleted_at__isnull=True)
        values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
        wanted = [v == "active" for v in values if v in ("active", "deleted")]
        condition = Q(pk__in=[]) if not wanted else (stage if all(wanted) else ~stage if not any(wanted) else Q())
        return ~condition if clause.op in ("!=", "NOT IN") else condition
    if key == "artifact_uri":
        raise invalid("Runs cannot be searched by artifact_uri.")
    raise invalid(f"Runs cannot be searched by {key!r}.")


def _metric_rows(key: str):
    return LatestMetric.objects.filter(job=OuterRef("pk"), name=key)


def _run_condition(clause: Clause):
    if clause.entity == METRIC:
        return Exists(_metric_rows(clause.key).filter(_number_q("value", clause)))
    if clause.entity == PARAM:
        return _text_condition(JobParam.objects.filter(job=OuterRef("pk"), key=clause.key), "value", clause)
    if clause.entity == TAG:
        if clause.key == RUN_NAME_TAG:
            return _text_q("display_name", clause)
        if clause.key == USER_TAG:
            return _text_q("submitted_by__username", clause)
        return _text_condition(RunTag.objects.filter(job=OuterRef("pk"), key=clause.key), "value", clause)
    return _run_attribute_q(clause)


def _order_expression(order: Order, index: int, runs: QuerySet):
    if order.entity == METRIC:
        name = f"_order_{index}"
        runs = runs.annotate(**{name: Subquery(_metric_rows(order.key).values("value")[:1])})
    elif order.entity in (PARAM, TAG) and order.key not in (RUN_NAME_TAG, USER_TAG):
        model = JobParam if order.entity == PARAM else RunTag
        name = f"_order_{index}"
        rows = model.objects.filter(job=OuterRef("pk"), key=order.key).values("value")[:1]
        runs = runs.annotate(**{name: Subquery(rows)})
    else:
        key = order.key if order.entity == ATTRIBUTE else ("run_name" if order.key == RUN_NAME_TAG else "user_id")
        name = {
            "start_time": "_start",
            "end_time": "finished_at",
            "run_id": "pk",
            "run_name": "display_name",
            "status": "status",
            "user_id": "submitted_by__username",
            "lifecycle_stage": "deleted_at",
        }.get(key)
        if name is None:
            raise invalid(f"Runs cannot be ordered by {order.key!r}.")
    expression = F(name).asc(nulls_last=True) if order.ascending else F(name).desc(nulls_last=True)
    return expression, runs


def runs_search(
    *, access: TrackingAccess, experiment_ids, filter_string=None, view=None, order_by=None, limit=None, token=None
):
    """(runs of the page, the next page's token or None), for MLflow's SearchRuns."""
    clauses = parse_filter(filter_string)
    orders = parse_order_by(order_by)
    size = max_results(limit, default=SEARCH_RUNS_DEFAULT, limit=SEARCH_RUNS_MAX)
    offset = page_offset(token)
    if not isinstance(experiment_ids, list) or not experiment_ids:
        raise invalid("Give at least one experiment id (experiment_ids).")
    if len(experiment_ids) > 1000:
        raise invalid("Give at most 1,000 experiment ids.")
    experiments = [
        experiment_get(access=access, experiment_id=eid).pk
        if str(eid) == DEFAULT_EXPERIMENT_ID
        else parse_int_id(eid, noun="experiment")
        for eid in experiment_ids
    ]
    runs = runs_of(access).filter(experiment_id__in=experiments).annotate(_start=Coalesce("started_at", "created_at"))
    runs = _by_view(runs, view_type(view))
    for clause in clauses:
        runs = runs.filter(_run_condition(clause))
    ordering = []
    for index, order in enumerate(orders):
        expression, runs = _order_expression(order, index, runs)
        ordering.append(expression)
    ordering += [F("_start").desc(), F("pk").desc()]
    rows = runs.order_by(*ordering).values_list(*RUN_FIELDS)[offset : offset + size + 1]
    page = [RunRow(*row) for row in rows]
    next_token = page_token(offset + size) if len(page) > size else None
    return page[:size], next_token


@dataclass
class RunData:
    """What a page of runs shows: per job id, its params, tags and latest metrics."""

    params: dict[int, list] = field(default_factory=dict)
    tags: dict[int, list] = field(default_factory=dict)
    metrics: dict[int, list] = field(default_factory=dict)


def runs_data(runs: list) -> RunData:
    """Three queries, whatever the number of runs."""
    ids = [run.pk for run in runs]
    data = RunData()
    if not ids:
        return data
    for job_id, key, value in JobParam.objects.filter(job_id__in=ids).values_list("job_id", "key", "value"):
        data.params.setdefault(job_id, []).append((key, value))
    for job_id, key, value in RunTag.objects.filter(job_id__in=ids).values_list("job_id", "key", "value"):
        data.tags.setdefault(job_id, []).append((key, value))
    rows = LatestMetric.objects.filter(job_id__in=ids).values_list("job_id", "name", "value", "step", "at")
    for job_id, name, value, step, at in rows:
        data.metrics.setdefault(job_id, []).append((name, value, step, at))
    return data


def metric_history(*, run: Job, key, limit=None, token=None):
    """(the metric's values by step and time, the next page's token or None)."""
    if not isinstance(key, str) or not key:
        raise invalid("Give the metric's key (metric_key).")
    size = max_results(limit, default=HISTORY_MAX, limit=HISTORY_MAX)
    offset = page_offset(token)
    rows = list(
        Metric.objects.filter(job=run, name=key)
        .order_by("step", "at", "pk")
        .values_list("value", "step", "at")[offset : offset + size + 1]
    )
    next_token = page_token(offset + size) if len(rows) > size else None
    return rows[:size], next_token
