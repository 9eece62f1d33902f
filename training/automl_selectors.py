"""The read model of an Automated ML run, computed once for the run page and the API.

The page turns it into figures; the API serializes it as it is (training/api/automl_views.py).
"""

import json
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from compute.jobs.models import Job, JobStatus
from compute.jobs.selectors import job_json_artifact
from data.services import data_version_path

from .automl_services import automl_spec, first_trial_seconds, trials_of
from .ml.forecast import ForecastSettingsError, infer_frequency, parse_times
from .ml.latency import within_limit
from .ml.metrics import sort_key
from .ml.tasks import (
    CLASSIFICATION,
    DEFAULT_PRIMARY_METRIC,
    FORECASTING,
    REGRESSION,
    REGRESSION_MIN_DISTINCT,
    REGRESSION_PRIMARY_METRICS,
    TASKS,
    suggest_task,
)
from .models import TrainingJobKind


@dataclass(frozen=True)
class LeaderboardRow:
    job: Job
    trial_id: int
    algorithm: str
    params: str  # JSON, keys sorted: the page prints it and the API returns it as is
    origin: str
    score: float | None
    metrics: dict
    duration: float | None
    latency_ms: float | None
    within_limit: bool
    error: str | None


@dataclass(frozen=True)
class AutoMLRun:
    job: Job
    task: str
    setup: dict
    guardrails: list
    metric: str
    infer_limit_ms: float | None
    leaderboard: list[LeaderboardRow]  # scored trials best first, then the unscored in trial order
    n_trials: int
    trials_done: int
    first_trial_s: float | None
    final: Job | None  # the newest final-model job, if one was started
    # test metrics of a completed final model: a classification's numeric ones by name, a
    # regression's six in their order (MAPE None when the target has zeros)
    final_metrics: list[tuple[str, float | None]]
    final_charts: dict | None  # the completed final model's charts.json
    final_importance: list | None  # its importance.json


def _leaderboard(trials: list[Job], *, metric: str, infer_limit_ms: float | None) -> list[LeaderboardRow]:
    rows = []
    for trial in trials:
        spec = trial.spec["trial"]
        result = trial.result.get("trial_result", {})
        rows.append(
            LeaderboardRow(
                job=trial,
                trial_id=spec["trial_id"],
                algorithm=spec["algorithm"],
                params=json.dumps(spec["params"], sort_keys=True),
                origin=spec["origin"],
                score=result.get("score"),
                metrics=result.get("metrics", {}),
                duration=result.get("duration_seconds"),
                latency_ms=result.get("latency_ms"),
                within_limit=within_limit(result.get("latency_ms"), infer_limit_ms),
                error=result.get("error"),
            )
        )
    scored = sorted((r for r in rows if r.score is not None), key=lambda r: (sort_key(metric, r.score), r.trial_id))
    return scored + [r for r in rows if r.score is None]


def _final_metrics(task: str, metrics: dict) -> list[tuple[str, float | None]]:
    if task == REGRESSION and metrics:
        return [(name, metrics.get(name)) for name in REGRESSION_PRIMARY_METRICS]
    return sorted((k, v) for k, v in metrics.items() if isinstance(v, (int, float)))


def automl_run_get(*, job: Job) -> AutoMLRun:
    """Guardrails, the live leaderboard and the final model's results of the run `job`."""
    trials = list(trials_of(job).select_related("node"))
    task = job.spec.get("task") or CLASSIFICATION
    metric = job.spec.get("automl", {}).get("primary_metric") or DEFAULT_PRIMARY_METRIC[task]
    infer_limit_ms = automl_spec(job).infer_limit_ms
    setup = job.result.get("setup", {})
    final = job.children.filter(kind=TrainingJobKind.AUTOML_FINAL).order_by("-id").first()
    completed = final is not None and final.status == JobStatus.COMPLETED
    return AutoMLRun(
        job=job,
        task=task,
        setup=setup,
        guardrails=setup.get("guardrails", []),
        metric=metric,
        infer_limit_ms=infer_limit_ms,
        leaderboard=_leaderboard(trials, metric=metric, infer_limit_ms=infer_limit_ms),
        n_trials=len(trials),
        trials_done=sum(t.status in JobStatus.finished() for t in trials),
        first_trial_s=first_trial_seconds(job),
        final=final,
        final_metrics=_final_metrics(task, final.result.get("test_metrics") or {}) if completed else [],
        final_charts=job_json_artifact(job=final, name="charts.json") if completed else None,
        final_importance=job_json_artifact(job=final, name="importance.json") if completed else None,
    )


@dataclass(frozen=True)
class ForecastRun:
    """A forecasting run's results, from its job's result (one job: no trials, no final child)."""

    job: Job
    metric: str
    settings: dict  # spec["automl"]: time column, series columns, horizon...
    frequency: str | None
    frequency_inferred: bool
    horizon: int | None
    series_count: int | None
    season_length: int | None
    guardrails: list
    leaderboard: list[dict]  # best first: rank, algorithm, label, score, metrics, seconds, status, error
    algorithm: str | None
    members: list[dict]
    metrics: dict
    validation_score: float | None
    windows: list[dict]  # backtest windows: origin, series [{key, time, actual, forecast, lower, upper}]
    stop_reason: str
    registered: str | None


def forecast_run_get(*, job: Job) -> ForecastRun:
    """What a forecasting run's page shows; empty until the run has finished."""
    result, settings = job.result or {}, job.spec.get("automl", {})
    return ForecastRun(
        job=job,
        metric=result.get("primary_metric") or settings.get("primary_metric") or DEFAULT_PRIMARY_METRIC[FORECASTING],
        settings=settings,
        frequency=result.get("frequency") or settings.get("frequency"),
        frequency_inferred=bool(result.get("frequency_inferred")),
        horizon=result.get("horizon") or settings.get("horizon"),
        series_count=result.get("series_count"),
        season_length=result.get("season_length"),
        guardrails=result.get("guardrails") or [],
        leaderboard=result.get("leaderboard") or [],
        algorithm=result.get("algorithm"),
        members=result.get("members") or [],
        metrics=result.get("metrics") or {},
        validation_score=result.get("validation_score"),
        windows=(result.get("backtest") or {}).get("windows") or [],
        stop_reason=result.get("stop_reason") or "",
        registered=result.get("registered"),
    )


@dataclass(frozen=True)
class TaskSuggestion:
    task: str
    label: str
    why: str
    may_have_zeros: bool  # a regression's MAPE is not offered then (it divides by the target)
    # a numeric target in data with a datetime column may be forecast over time: that column
    time_column: str | None = None


def task_suggestion(version, target_column: str) -> TaskSuggestion | None:
    """The task suggested for predicting `target_column` of `version`, with the reason, read from
    the version's schema (semantic type) and profile (distinct values, range)."""
    column = next((c for c in (version.schema or {}).get("columns", []) if c["name"] == target_column), None)
    if column is None:
        return None
    facts = next((p for p in (version.profile or {}).get("column_profiles", []) if p.get("name") == target_column), {})
    kind, distinct = column.get("semantic_type", ""), facts.get("distinct")
    task = suggest_task({"type": kind, "distinct": distinct})
    counted = f" with {distinct:,} distinct values" if distinct is not None else ""
    if task == REGRESSION:
        why = f"{target_column} is {kind}{counted}: a number to predict."
    elif kind in ("numeric", "integer"):
        why = f"{target_column} is {kind}{counted} (at most {REGRESSION_MIN_DISTINCT}): classes to predict."
    else:
        why = f"{target_column} is {kind or 'not numeric'}{counted}: classes to predict."
    low, high = facts.get("min"), facts.get("max")
    may_have_zeros = not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and (low > 0 or high < 0))
    dated = [c["name"] for c in (version.schema or {}).get("columns", []) if c.get("semantic_type") == "datetime"]
    return TaskSuggestion(
        task=task,
        label=TASKS[task],
        why=why,
        may_have_zeros=may_have_zeros,
        time_column=dated[0] if dated and task == REGRESSION else None,
    )


MAX_FREQUENCY_ROWS = 200_000


def inferred_frequency(version, time_column: str) -> tuple[str | None, str]:
    """The frequency the run will infer from `time_column` (the engine's own parsing and inference,
    on the first rows: a preview for the wizard), and a message when it cannot."""
    names = [c["name"] for c in (version.schema or {}).get("columns", [])]
    if time_column not in names:
        return None, f"{time_column} is not a column of {version}."
    first = next(
        pq.ParquetFile(data_version_path(version)).iter_batches(batch_size=MAX_FREQUENCY_ROWS, columns=[time_column]),
        None,
    )
    if first is None:
        return None, f"{version} has no rows."
    try:
        times = parse_times(first.column(0).to_pandas(), time_column)
        distinct = pd.DatetimeIndex(times.dropna().unique()).sort_values()
        if len(distinct) < 3:
            return None, f"{time_column} has fewer than 3 distinct times."
        alias = infer_frequency([distinct])
    except ForecastSettingsError as exc:
        return None, str(exc)
    if alias is None:
        return None, "The times are irregular: choose the frequency."
    return alias, ""
