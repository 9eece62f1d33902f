"""A forecasting run: an Automated ML run (kind AUTOML, ``spec["task"] == "forecasting"``) that
runs in one job on one node — prepare the series (guardrails), backtest a handful of models by
rolling origin within the time budget, refit the best on the whole history and package it on the
run job itself (no trial or final children).

``AutoMLJob.validate`` / ``run`` hand a forecasting spec to ``forecast_validate`` / ``forecast_run``.
"""

import time

import pandas as pd
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from compute.jobs.kinds import CleanSpec
from compute.jobs.models import Job, JobStatus
from compute.jobs.runner import JobError
from data.models import DataVersion
from modelformat.drift import prediction_profile, reference_profile
from modelformat.modelio import save_model
from modelformat.onnx_export import TARGET_OPSET, TOLERANCE
from modelformat.onnx_members import member_regressors, members_to_onnx
from modelformat.signature import MAX_FORECAST_SERIES, Signature, build_forecast_signature

from ..datasets import check_target, data_version_frame, included_columns
from ..ml.forecast import (
    MAX_SERIES_COLUMNS,
    ForecastSettings,
    ForecastSettingsError,
    prepare,
    search,
)
from ..ml.tasks import FORECASTING, FORECASTING_PRIMARY_METRICS, NUMERIC_TYPES
from ..models import ModelVersion
from ..packaging import write_json_artifact
from ..registry_services import model_register

# The settings a spec's "automl" object may hold (the target is the spec's target_column).
SETTING_KEYS = (
    "time_column",
    "series_columns",
    "horizon",
    "frequency",
    "known_ahead",
    "gap",
    "season_length",
    "backtest_windows",
    "primary_metric",
    "timeout_s",
    "algorithms",
)
# Submitting runs the engine's checks on the data itself (parse, lengths) up to this many rows; a
# bigger version is checked on its node, where a bad setting fails the run with the same message.
VALIDATE_MAX_ROWS = 500_000
# Kept from the time budget for refitting, packaging and registering after the search.
PACKAGING_RESERVE_SECONDS = 5.0


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _column_names(version: DataVersion) -> dict[str, str]:
    return {c["name"]: c.get("semantic_type", "") for c in included_columns(version)}


def _check_columns(value, field: str, names: dict, taken: set, *, most: int | None = None) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _field_error(field, "Give a list of column names.")
    if most is not None and len(value) > most:
        raise _field_error(field, f"Choose at most {most} columns.")
    for name in value:
        if name not in names:
            raise _field_error(field, f"There is no column {name!r} in this data version.")
        if name in taken:
            raise _field_error(field, f"{name!r} is already the time, target or a series column.")
    if len(set(value)) != len(value):
        raise _field_error(field, "A column is listed twice.")
    return list(value)


def forecast_settings(spec: dict) -> ForecastSettings:
    return ForecastSettings.from_dict({**spec["automl"], "target_column": spec["target_column"]})


def forecast_validate(workspace, spec: dict, version: DataVersion) -> CleanSpec:
    """The clean spec of a forecasting run, or a ValidationError naming the setting at fault."""
    given = dict(spec.get("automl") or {})
    unknown = sorted(k for k in given if k not in SETTING_KEYS and k != "task")
    if unknown:
        raise _field_error(unknown[0], f"{unknown[0]!r} is not a forecasting setting ({', '.join(SETTING_KEYS)}).")
    names = _column_names(version)
    time_column = given.get("time_column")
    if not time_column:
        raise _field_error("time_column", "Choose the time column: the column that dates each row.")
    if not isinstance(time_column, str) or time_column not in names:
        raise _field_error("time_column", f"There is no column {time_column!r} in this data version.")
    target = check_target(version, spec.get("target_column"))
    if target == time_column:
        raise _field_error("target_column", "The target cannot be the time column.")
    if names[target] not in NUMERIC_TYPES:
        raise _field_error(
            "target_column",
            f"A forecast predicts a number, and {target!r} is {names[target] or 'not numeric'}: "
            "choose a numeric column.",
        )
    series_columns = _check_columns(
        given.get("series_columns"), "series_columns", names, {time_column, target}, most=MAX_SERIES_COLUMNS
    )
    known_ahead = _check_columns(given.get("known_ahead"), "known_ahead", names, {time_column, target, *series_columns})
    primary_metric = given.get("primary_metric") or "normalized_rmse"
    if primary_metric not in FORECASTING_PRIMARY_METRICS:
        raise _field_error("primary_metric", f"Choose one of {', '.join(FORECASTING_PRIMARY_METRICS)}.")
    values = {
        **{k: given[k] for k in SETTING_KEYS if k in given},
        "time_column": time_column,
        "series_columns": series_columns,
        "known_ahead": known_ahead,
        "primary_metric": primary_metric,
        "target_column": target,
    }
    try:
        settings = ForecastSettings.from_dict(values)  # types and ranges (timeout_s, algorithms...) by field
    except ForecastSettingsError as exc:
        raise _field_error(exc.field, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _field_error("settings", str(exc)) from None
    if version.rows <= VALIDATE_MAX_ROWS:
        frame = forecast_frame(version, settings)
        try:
            prepare(frame, settings)  # parses the times (naming the first bad value), lengths, the grid
        except ForecastSettingsError as exc:
            raise _field_error(exc.field, str(exc)) from None
        except (ValueError, OverflowError, MemoryError) as exc:  # a grid too long or out of bounds for pandas
            raise _field_error(
                "frequency", f"The series cannot be laid on a grid at this frequency ({type(exc).__name__}: {exc})."
            ) from None
    seed = spec.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _field_error("seed", "The seed is a whole number.")
    automl = settings.to_dict()
    automl.pop("target_column", None)
    return CleanSpec(
        spec={
            "task": FORECASTING,
            "data_version_id": version.pk,
            "target_column": target,
            "automl": automl,
            "test_fraction": 0.0,  # the last backtest window is the held-out score
            "seed": seed,
            "register_as": spec.get("register_as") or "",
            "validation_data_version_id": None,
        },
        data_version=version,
    )


def forecast_frame(version: DataVersion, settings: ForecastSettings) -> pd.DataFrame:
    """The columns a forecast reads from a data version (time, series, target, known-ahead)."""
    names = [settings.time_column, *settings.series_columns, settings.target_column, *settings.known_ahead]
    return data_version_frame(version)[names]


def _set_reason(job: Job, reason: str) -> None:
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(status_reason=reason[:500])


def forecast_run(ctx) -> dict:
    """The run on its node: prepare, search within the budget, package, register."""
    settings = forecast_settings(ctx.spec)
    deadline = ctx.started + settings.timeout_s - PACKAGING_RESERVE_SECONDS
    version = DataVersion.objects.get(pk=ctx.spec["data_version_id"])
    frame = forecast_frame(version, settings)
    ctx.log(f"History: {len(frame):,} rows of {version}; horizon {settings.horizon}, gap {settings.gap}")
    try:
        prepared = prepare(frame, settings)
    except ForecastSettingsError as exc:
        raise JobError(f"{exc.field}: {exc}") from None
    for guardrail in prepared.guardrails:
        ctx.log(f"Guardrail {guardrail['name']}: {guardrail['status']} — {guardrail['message']}")
    inferred = prepared.frequency_inferred
    ctx.log(
        f"{len(prepared.series)} series; frequency {prepared.frequency}{' (inferred)' if inferred else ''}; "
        f"season length {prepared.season_length}; primary metric {settings.primary_metric}"
    )
    _set_reason(ctx.job, f"backtesting on {len(prepared.series)} series")

    def progress(message: str) -> None:
        ctx.log(message)
        _set_reason(ctx.job, f"backtesting: {message}"[:500])

    ctx.check_canceled()
    try:
        found = search(prepared, settings, seed=ctx.spec["seed"], deadline=deadline, log=progress)
    except ForecastSettingsError as exc:
        raise JobError(f"{exc.field}: {exc}") from None
    best = found.best
    if best is None or best.get("status") != "succeeded":
        raise JobError(
            "No forecasting model succeeded: "
            + "; ".join(f"{row['algorithm']}: {row.get('error')}" for row in found.leaderboard)
        )
    ctx.log(f"Best: {best['label']}, {settings.primary_metric} {best['score']:.4g} on the backtest")
    for name, value in found.metrics.items():
        if value is not None:
            ctx.metric(name, value)
    ctx.check_canceled()
    _set_reason(ctx.job, "packaging the model")
    # the latency is timed within the whole budget (the packaging reserve is what it may use)
    budget_end = ctx.started + settings.timeout_s
    packaged = _package(ctx, found.forecaster, frame, prepared, settings, version, deadline=budget_end)
    elapsed = time.monotonic() - ctx.started
    result = {
        "task": FORECASTING,
        "frequency": prepared.frequency,
        "frequency_inferred": inferred,
        "season_length": prepared.season_length,
        "horizon": settings.horizon,
        "gap": settings.gap,
        "series_count": len(prepared.series),
        "guardrails": prepared.guardrails,
        "leaderboard": found.leaderboard,
        "algorithm": best["algorithm"],
        "label": best.get("label", best["algorithm"]),
        "members": _members(found.forecaster, best),
        "metrics": found.metrics,
        "validation_score": best["score"],
        "primary_metric": settings.primary_metric,
        "backtest": {"windows": found.windows},
        "stop_reason": _stop_reason(found, deadline),
        "elapsed_seconds": round(elapsed, 2),
        **packaged,
    }
    register_as = ctx.spec.get("register_as")
    if register_as:  # registered before the run says "completed", so a completed run has its model
        try:
            registered = model_register(
                actor=ctx.job.submitted_by,
                job=ctx.job,
                name=register_as,
                description=f"Best forecasting model of Automated ML run #{ctx.job.pk}",
                metrics=found.metrics,
                algorithm=best["algorithm"],
                in_own_run=True,
            )
            # the version is made while the run still runs: its result (and latency) is not saved yet
            ModelVersion.objects.filter(pk=registered.pk).update(scoring_latency_ms=packaged["latency_ms"])
            result["registered"] = str(registered)
            ctx.log(f"Registered as {registered}")
        except (ValidationError, PermissionDenied, Http404) as exc:
            result["registration_error"] = " ".join(getattr(exc, "messages", [str(exc)]))
            ctx.log(f"Not registered: {result['registration_error']}")
    return result


def _members(forecaster, best: dict) -> list[dict]:
    members = best.get("members") or getattr(forecaster, "members_summary", None)
    if isinstance(members, list):
        return [{"algorithm": m.get("algorithm"), "weight": m.get("weight")} for m in members if isinstance(m, dict)]
    return [{"algorithm": best["algorithm"], "weight": 1.0}]


def _stop_reason(found, deadline: float) -> str:
    reason = getattr(found, "stop_reason", None)
    if reason:
        return reason
    tried = sum(1 for row in found.leaderboard if row.get("status") == "succeeded")
    if time.monotonic() >= deadline:
        return f"the time budget ended after {tried} backtested models"
    return f"every candidate backtested ({tried} models)"


def _package(
    ctx, forecaster, frame: pd.DataFrame, prepared, settings: ForecastSettings, version, *, deadline: float
) -> dict:
    """model.skops, signature.json, reference_profile.json (the target's distribution for the
    prediction drift; known-ahead columns for input drift) and onnx_report.json."""
    started = time.perf_counter()
    sha = save_model(forecaster, ctx.artifact_path("model.skops"))
    artifact = ctx.artifact_saved("model.skops", kind="model")
    if artifact.sha256 != sha:
        raise RuntimeError("the model file changed while it was being recorded")
    types = _column_names(version)
    signature = build_forecast_signature(
        frame,
        column_types=types,
        forecast={
            "time_column": settings.time_column,
            "series_columns": list(settings.series_columns),
            "target_column": settings.target_column,
            "known_ahead": list(settings.known_ahead),
            "horizon": settings.horizon,
            "frequency": prepared.frequency,
            "gap": settings.gap,
            "season_length": prepared.season_length,
            "series": _json_keys(prepared.series),
            # each known series' last time: where a forecast from the stored history starts
            "last_times": [pd.Timestamp(s.times[-1]).isoformat() for s in prepared.panel][:MAX_FORECAST_SERIES],
        },
    )
    write_json_artifact(ctx, "signature.json", signature, "signature")
    compiled = Signature(signature)
    if settings.known_ahead:
        future = compiled.future_signature
        profile = reference_profile(frame[list(future.names)].head(50_000), future)
        profile["columns"] = {k: v for k, v in profile["columns"].items() if k in settings.known_ahead}
    else:
        profile = {"version": 1, "rows": len(frame), "columns": {}}
    profile["prediction"] = prediction_profile(pd.to_numeric(frame[settings.target_column], errors="coerce").dropna())
    write_json_artifact(ctx, "reference_profile.json", profile, "monitoring")
    try:
        report = _member_twins(ctx, forecaster)
    except Exception as exc:  # noqa: BLE001 - the model is served by its estimators all the same
        report = {"converted": False, "reason": f"the ONNX twins did not load: {type(exc).__name__}: {exc}"}
    write_json_artifact(ctx, "onnx_report.json", report, "report")
    latency_ms = _forecast_latency_ms(forecaster, deadline)
    twins = (
        f" and ONNX twins of members {', '.join(str(p + 1) for p in report['members'])} "
        f"(max difference {report['max_rel_diff']:.1e} relative)"
        if report["converted"]
        else f"; no ONNX twin ({report['reason']})"
    )
    ctx.log(f"Packaged model.skops ({artifact.size:,} bytes){twins} in {time.perf_counter() - started:.1f} s")
    return {
        "model_artifact": artifact.pk,
        "model_sha256": sha,
        "onnx": report["converted"],
        "onnx_reason": report.get("reason"),
        "latency_ms": latency_ms,
        "packaging_seconds": round(time.perf_counter() - started, 3),
    }


def _member_twins(ctx, forecaster) -> dict:
    """``model.onnx`` with an ONNX twin of each boosting member whose forecasts, through the twin,
    stay within TOLERANCE (relative) of its estimator's; the report says which members have one.
    The twins are attached to ``forecaster`` (its latency is then the served one)."""
    estimators = forecaster.boosting_estimators()
    if not estimators:
        return {"converted": False, "reason": "only boosting members have ONNX twins; this model has none"}
    every, refused = members_to_onnx(estimators, TARGET_OPSET)
    candidates = member_regressors(every) if every else {}
    differences = {p: forecaster.regressor_difference({p: r}) for p, r in candidates.items()}
    passed = {p: estimators[p] for p, difference in differences.items() if difference <= TOLERANCE}
    for position, difference in differences.items():
        if position not in passed:
            refused[position] = f"its forecasts differ by up to {difference:.2g} relative (allowed: {TOLERANCE:g})"
    if not passed:
        return {"converted": False, "reason": "no boosting member verified: " + "; ".join(refused.values())}
    if len(passed) == len(candidates):  # every twin verified: the file converted first, loaded already
        onnx_bytes, regressors = every, candidates
    else:  # the verified ones alone, loaded before the file is kept
        onnx_bytes = members_to_onnx(passed, TARGET_OPSET)[0]
        regressors = member_regressors(onnx_bytes)
    ctx.artifact_path("model.onnx").write_bytes(onnx_bytes)
    ctx.artifact_saved("model.onnx", kind="model")
    forecaster.use_regressors(regressors)
    return {
        "converted": True,
        "members": sorted(passed),
        "max_rel_diff": max(differences[p] for p in passed),
        "refused": {str(p): reason for p, reason in refused.items()},
    }


def _forecast_latency_ms(forecaster, deadline: float) -> float | None:
    """One series forecast from the stored history (what a request for one series costs), in ms;
    None past the run's deadline (timing every series could overrun the budget by minutes)."""
    if time.monotonic() >= deadline or not forecaster.series:
        return None
    try:
        started = time.perf_counter()
        forecaster.forecast(series=forecaster.series[:1])
        return round((time.perf_counter() - started) * 1000, 3)
    except Exception:  # noqa: BLE001 - a model that needs known-ahead values cannot forecast from nothing
        return None


def _json_keys(series: list) -> list[dict]:
    return [{k: _json_value(v) for k, v in key.items()} for key in series]


def _json_value(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
