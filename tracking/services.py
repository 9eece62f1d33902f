"""Changes made through the MLflow tracking API: experiments, runs (jobs), what a run logs.

Every service takes the caller's `TrackingAccess` and checks the role again through the workspace
policy (a Reader reads only). A job's own token writes only to its own run (the run selectors refuse
any other) and never to an experiment. An experiment is training's Experiment; a run is a job, and
a run started by the client is an external run job (no compute, RUNNING and detached until the
client ends it).
"""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from compute.jobs.models import Job, JobStatus
from compute.jobs.recovery import job_event_record
from compute.jobs.run_services import MetricValue, job_artifact_store, job_metrics_log, job_params_log
from compute.jobs.services import job_detached_finish
from studio.validation import model_validate
from training.experiment_services import experiment_create as training_experiment_create
from training.models import Experiment
from workspaces.policy import Action, require
from workspaces.services import activity_record

from .base import TrackingAccess
from .errors import RESOURCE_ALREADY_EXISTS, MlflowError, invalid
from .jobs import EXTERNAL
from .models import ExperimentTag, RunTag
from .selectors import RUN_NAME_TAG, USER_TAG

MAX_METRICS_PER_BATCH = 1000  # MLflow's limits per log-batch call
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAMS_PER_RUN = 1000
EXPERIMENT_NAME_MAX = 100
RUN_NAME_MAX = 200
MLFLOW_TO_FINISHED = {"FINISHED": JobStatus.COMPLETED, "FAILED": JobStatus.FAILED, "KILLED": JobStatus.CANCELED}
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


def _require_write(access: TrackingAccess) -> None:
    require(access.user, access.workspace, Action.WRITE)


def _require_active(run: Job) -> None:
    if run.deleted_at is not None:
        raise invalid(f"The run {run.pk} is deleted: restore it before changing it.")


def as_int(value, *, name: str, minimum: int = -(2**63), maximum: int = 2**63 - 1) -> int | None:
    """A whole number sent as a JSON number or string (protobuf's int64 is a string in JSON)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise invalid(f"{name} must be a whole number.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"-?[0-9]{1,19}", text):
            raise invalid(f"{name} must be a whole number, not {value[:30]!r}.")
        value = int(text)
    if not isinstance(value, int) or not minimum <= value <= maximum:
        raise invalid(f"{name} must be a whole number from {minimum} to {maximum}.")
    return value


def time_from_ms(value, *, name: str) -> datetime | None:
    ms = as_int(value, name=name, minimum=0, maximum=253402300799999)  # up to year 9999
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _text(value, *, name: str, maximum: int, allow_empty: bool = True) -> str:
    if value is None:
        value = ""
    if isinstance(value, bool) or isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string.")
    if (not value and not allow_empty) or len(value) > maximum or "\x00" in value:
        raise invalid(f"{name} must be {'1' if not allow_empty else '0'}–{maximum} characters, without NUL.")
    return value


def _tag_pairs(tags, *, limit: int) -> list[tuple[str, str]]:
    if tags in (None, ""):
        return []
    if not isinstance(tags, list) or len(tags) > limit:
        raise invalid(f"tags is a list of at most {limit} {{key, value}} objects.")
    pairs = []
    for tag in tags:
        if not isinstance(tag, dict):
            raise invalid("Each tag is an object with a key and a value.")
        pairs.append((tag.get("key"), tag.get("value")))
    return pairs


# --- Experiments --------------------------------------------------------------------------------
def _experiment_name(name) -> str:
    name = _text(name, name="name", maximum=EXPERIMENT_NAME_MAX, allow_empty=False)
    if not name.strip():
        raise invalid("An experiment's name cannot be blank.")
    return name


def experiment_create(*, access: TrackingAccess, name, tags=None) -> Experiment:
    """A new experiment (training's one way to make one); RESOURCE_ALREADY_EXISTS if the name is
    taken (by a deleted one too)."""
    access.require_unscoped()
    name = _experiment_name(name)
    pairs = _tag_pairs(tags, limit=MAX_TAGS_PER_BATCH)
    with transaction.atomic():
        try:
            experiment = training_experiment_create(actor=access.user, workspace=access.workspace, name=name)
        except ValidationError as exc:
            if any(e.code == "conflict" for errors in exc.error_dict.values() for e in errors):
                raise MlflowError(f"An experiment named {name!r} already exists.", RESOURCE_ALREADY_EXISTS) from None
            raise
        for key, value in pairs:
            _experiment_tag_write(experiment, key, value)
    return experiment


def experiment_rename(*, access: TrackingAccess, experiment: Experiment, name) -> Experiment:
    access.require_unscoped()
    _require_write(access)
    name = _experiment_name(name)
    if name == experiment.name:
        return experiment
    if Experiment.objects.filter(workspace=access.workspace, name=name).exclude(pk=experiment.pk).exists():
        raise MlflowError(f"An experiment named {name!r} already exists.", RESOURCE_ALREADY_EXISTS)
    try:
        with transaction.atomic():
            Experiment.objects.filter(pk=experiment.pk).update(name=name)
    except IntegrityError:
        raise MlflowError(f"An experiment named {name!r} already exists.", RESOURCE_ALREADY_EXISTS) from None
    experiment.name = name
    return experiment


def experiment_delete(*, access: TrackingAccess, experiment: Experiment) -> None:
    """Soft: the experiment and its runs are hidden from MLflow's lists, and can be restored."""
    access.require_unscoped()
    _require_write(access)
    if experiment.deleted_at is None:
        Experiment.objects.filter(pk=experiment.pk).update(deleted_at=timezone.now())
        activity_record(
            workspace=access.workspace,
            actor=access.user,
            verb="experiment_deleted",
            summary=f"{access.user} deleted the experiment {experiment.name} through MLflow",
        )


def experiment_restore(*, access: TrackingAccess, experiment: Experiment) -> None:
    access.require_unscoped()
    _require_write(access)
    Experiment.objects.filter(pk=experiment.pk).update(deleted_at=None)


def _experiment_tag_write(experiment: Experiment, key, value) -> None:
    tag = ExperimentTag(experiment=experiment, key=key if isinstance(key, str) else "", value=_tag_value(value))
    _validate_tag(tag)
    ExperimentTag.objects.update_or_create(experiment=experiment, key=tag.key, defaults={"value": tag.value})


def experiment_tag_set(*, access: TrackingAccess, experiment: Experiment, key, value) -> None:
    access.require_unscoped()
    _require_write(access)
    _experiment_tag_write(experiment, key, value)


def experiment_tag_delete(*, access: TrackingAccess, experiment: Experiment, key) -> None:
    access.require_unscoped()
    _require_write(access)
    deleted, _ = ExperimentTag.objects.filter(experiment=experiment, key=key).delete()
    if not deleted:
        raise MlflowError(f"The experiment has no tag {str(key)[:100]!r}.", "RESOURCE_DOES_NOT_EXIST")


# --- Runs -----------------------------------------------------------------------------------------
def _tag_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    return value if isinstance(value, str) else None


def _validate_tag(tag) -> None:
    if tag.value is None:
        raise invalid(f"The tag {tag.key[:100]!r} must have a string value.")
    try:
        model_validate(tag, fields=["key", "value"])
    except ValidationError as exc:
        messages = [f"{field}: {m}" for field, ms in exc.message_dict.items() for m in ms]
        raise invalid(f"Invalid tag {tag.key[:100]!r}: {' '.join(messages)}") from None


def run_create(*, access: TrackingAccess, experiment: Experiment, run_name=None, start_time=None, tags=None) -> Job:
    """An external run: a job of kind "external" in the experiment, RUNNING from `start_time`
    (milliseconds; now by default), with no compute (detached: the engine never re-queues it)."""
    access.require_unscoped()
    _require_write(access)
    if experiment.deleted_at is not None:
        raise invalid(f"The experiment {experiment.name!r} is deleted: restore it to add runs.")
    pairs = _tag_pairs(tags, limit=MAX_TAGS_PER_BATCH)
    names = [value for key, value in pairs if key == RUN_NAME_TAG]
    run_name = _text(run_name or (names[0] if names else ""), name="run_name", maximum=RUN_NAME_MAX)
    started = time_from_ms(start_time, name="start_time") or timezone.now()
    with transaction.atomic():
        job = Job.objects.create(
            workspace=access.workspace,
            experiment=experiment,
            kind=EXTERNAL,
            display_name=run_name,
            status=JobStatus.RUNNING,
            status_reason="running: started by the MLflow client",
            detached=True,
            submitted_by=access.user,
            started_at=started,
            running_at=started,
        )
        job_event_record(job, JobStatus.RUNNING, job.status_reason)
        _run_tags_write(job, [(key, value) for key, value in pairs if key != RUN_NAME_TAG])
    return job


def run_update(*, access: TrackingAccess, run: Job, status=None, end_time=None, run_name=None) -> Job:
    """Rename the run and, for an external run, end it (FINISHED, FAILED or KILLED at `end_time`).

    The engine owns the status of every other kind: a command job's code that ends its MLflow run
    does not end the job (its process does), so a status sent for such a run is ignored."""
    _require_write(access)
    _require_active(run)
    if status not in (None, "") and status not in RUN_STATUSES:
        raise invalid(f"Invalid status {status!r}: use one of {', '.join(RUN_STATUSES)}.")
    ended = time_from_ms(end_time, name="end_time")
    if run_name not in (None, ""):
        run.display_name = _text(run_name, name="run_name", maximum=RUN_NAME_MAX)
        Job.objects.filter(pk=run.pk).update(display_name=run.display_name)
    if run.kind == EXTERNAL and status in MLFLOW_TO_FINISHED:
        finished = MLFLOW_TO_FINISHED[status]
        if job_detached_finish(job_id=run.pk, status=finished, reason=f"{status.lower()}: ended by the MLflow client"):
            Job.objects.filter(pk=run.pk).update(finished_at=ended or timezone.now())
        run.refresh_from_db()
    return run


def run_delete(*, access: TrackingAccess, run: Job) -> None:
    """Soft: the run is hidden from lists and can be restored; its rows and files are kept."""
    access.require_unscoped()
    _require_write(access)
    Job.objects.filter(pk=run.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())


def run_restore(*, access: TrackingAccess, run: Job) -> None:
    access.require_unscoped()
    _require_write(access)
    Job.objects.filter(pk=run.pk).update(deleted_at=None)


def _run_tags_write(run: Job, pairs: list[tuple]) -> None:
    tags = {}
    for key, value in pairs:
        tag = RunTag(job=run, key=key if isinstance(key, str) else "", value=_tag_value(value))
        if tag.key == USER_TAG:
            continue  # the run's user is who authenticated, not what the client's machine says
        if tag.key == RUN_NAME_TAG:
            run.display_name = _text(tag.value, name="run_name", maximum=RUN_NAME_MAX)
            Job.objects.filter(pk=run.pk).update(display_name=run.display_name)
            continue
        _validate_tag(tag)
        tags[tag.key] = tag
    if not tags:
        return
    held = {tag.key: tag for tag in RunTag.objects.filter(job=run, key__in=list(tags))}
    for key, tag in tags.items():
        if key in held:
            held[key].value = tag.value
    RunTag.objects.bulk_update(list(held.values()), ["value"])
    RunTag.objects.bulk_create([tag for key, tag in tags.items() if key not in held])


def run_tag_set(*, access: TrackingAccess, run: Job, key, value) -> None:
    _require_write(access)
    _require_active(run)
    with transaction.atomic():
        Job.objects.select_for_update().filter(pk=run.pk).first()
        _run_tags_write(run, [(key, value)])


def run_tag_delete(*, access: TrackingAccess, run: Job, key) -> None:
    _require_write(access)
    _require_active(run)
    deleted, _ = RunTag.objects.filter(job=run, key=key).delete()
    if not deleted:
        raise MlflowError(f"The run has no tag {str(key)[:100]!r}.", "RESOURCE_DOES_NOT_EXIST")


@dataclass(frozen=True)
class Batch:
    metrics: list
    params: dict
    tags: list


def _metric_value(value):
    if isinstance(value, str):  # protobuf's JSON writes NaN and infinities as strings
        try:
            value = float(value)
        except ValueError:
            raise invalid(f"A metric's value must be a number, not {value[:30]!r}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid("A metric's value must be a number.")
    if not math.isfinite(value):
        raise invalid("A metric's value must be a finite number (the studio does not store NaN or infinities).")
    return value


def _batch(metrics, params, tags) -> Batch:
    for name, items, limit in (
        ("metrics", metrics, MAX_METRICS_PER_BATCH),
        ("params", params, MAX_PARAMS_PER_BATCH),
        ("tags", tags, MAX_TAGS_PER_BATCH),
    ):
        if items not in (None, "") and (not isinstance(items, list) or len(items) > limit):
            raise invalid(f"{name} is a list of at most {limit} items per call.")
    metrics, params, tags = metrics or [], params or [], tags or []
    if len(metrics) + len(params) + len(tags) > MAX_ENTITIES_PER_BATCH:
        raise invalid(f"A batch holds at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags in all.")
    values = []
    for item in metrics:
        if not isinstance(item, dict):
            raise invalid("Each metric is an object with key, value, timestamp and step.")
        values.append(
            MetricValue(
                key=item.get("key"),
                value=_metric_value(item.get("value")),
                step=as_int(item.get("step"), name="step", minimum=-(2**31), maximum=2**31 - 1) or 0,
                at=time_from_ms(item.get("timestamp"), name="timestamp"),
            )
        )
    clean_params = {}
    for item in params:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise invalid("Each param is an object with a string key and value.")
        value = _tag_value(item.get("value"))
        if value is None:
            raise invalid(f"The param {item['key'][:100]!r} must have a string value.")
        if item["key"] in clean_params and clean_params[item["key"]] != value:
            raise invalid(f"The param {item['key'][:100]!r} is given twice with different values.")
        clean_params[item["key"]] = value
    return Batch(metrics=values, params=clean_params, tags=_tag_pairs(tags, limit=MAX_TAGS_PER_BATCH))


def run_log_batch(*, access: TrackingAccess, run: Job, metrics=None, params=None, tags=None) -> None:
    """Log metrics (job_metrics_log: MLflow's timestamps kept), params (never changed once set)
    and tags at once, all or none, within MLflow's limits per call."""
    _require_write(access)
    _require_active(run)
    batch = _batch(metrics, params, tags)
    with transaction.atomic():
        if batch.tags:  # two writers of one run's tags queue here (the params and metrics lock it too)
            Job.objects.select_for_update().filter(pk=run.pk).first()
        if batch.params:
            job_params_log(job=run, params=batch.params, max_params=MAX_PARAMS_PER_RUN)
        if batch.metrics:
            job_metrics_log(job=run, metrics=batch.metrics)
        if batch.tags:
            _run_tags_write(run, batch.tags)


def run_artifact_store(*, access: TrackingAccess, run: Job, path: str, stream, size: int):
    """Store an uploaded file as the run's artifact "logged/<path>" (checked path, size limit, quota)."""
    _require_write(access)
    _require_active(run)
    return job_artifact_store(job=run, path=path, stream=stream, size=size)
