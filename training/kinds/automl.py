"""Automated ML job kinds: the run (set-up, then detached while its trials run), a trial, and the
final job (ensembles, the final model, test scores, charts, feature importance, packaging)."""

import json
import time
from functools import lru_cache

import numpy as np
from django.core.exceptions import ValidationError

from compute.jobs.kinds import CleanSpec, JobHandler
from compute.jobs.models import Artifact, Job, JobStatus
from compute.jobs.recovery import job_artifact_dir
from compute.jobs.runner import Detach, JobError
from data.models import DataVersion
from modelformat.modelio import load_model, save_model
from modelformat.signature import build_signature
from studio.validation import model_validate

from .. import automl_services
from ..datasets import check_numeric_target, check_target, load_training_data, target_zero_rows
from ..ml.columns import check_overrides
from ..ml.ensemble import choose_final_model
from ..ml.explain import permutation_feature_importance
from ..ml.metrics import (
    REGRESSION_DIRECTIONS,
    check_primary_metric,
    classification_charts,
    classification_metrics,
    regression_charts,
    regression_metrics,
)
from ..ml.search import AutoMLSearch, AutoMLSpec, automl_setup
from ..ml.tasks import CLASSIFICATION, DEFAULT_PRIMARY_METRIC, FORECASTING, REGRESSION, check_task
from ..ml.trial import TrialSpec, predict_proba_aligned, predict_values, run_trial
from ..ml.validation import split_test, validation_rows
from ..models import RegisteredModel, TrainingJobKind
from ..packaging import package_model, write_json_artifact
from ..registry_selectors import models_registered_from
from .forecast import forecast_run, forecast_validate

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "auc_weighted", "f1_weighted", "log_loss")
REGRESSION_SUMMARY_METRICS = tuple(REGRESSION_DIRECTIONS)


def summary_metrics(task: str) -> tuple[str, ...]:
    return REGRESSION_SUMMARY_METRICS if task == REGRESSION else SUMMARY_METRICS


def _version(workspace, version_id, field):
    version = (
        DataVersion.objects.filter(pk=version_id, asset__workspace=workspace).select_related("asset").first()
        if isinstance(version_id, int) and not isinstance(version_id, bool)
        else None
    )
    if version is None:
        raise ValidationError({field: ValidationError("Choose a data version of this workspace.", code="not_found")})
    return version


class AutomlData:
    """The run's data, split the same way on every node: training part, test part, validation set."""

    def __init__(self, spec: dict):
        version = DataVersion.objects.get(pk=spec["data_version_id"])
        self.task = spec.get("task", CLASSIFICATION)
        data = load_training_data(version, spec["target_column"], self.task)
        self.column_types = data.column_types
        self.version = version
        self.dropped_rows = data.dropped_rows
        X, y = data.X, data.y
        fraction = spec.get("test_fraction") or 0
        if fraction:
            self.X, self.X_test, self.y, self.y_test = split_test(
                X, y, fraction, seed=spec["seed"], stratified=self.task != REGRESSION
            )
            self.X, self.y = self.X.reset_index(drop=True), self.y.reset_index(drop=True)
            self.X_test, self.y_test = self.X_test.reset_index(drop=True), self.y_test.reset_index(drop=True)
        else:
            self.X, self.y, self.X_test, self.y_test = X, y, None, None
        self.validation = None
        if spec.get("validation_data_version_id"):
            valid = load_training_data(
                DataVersion.objects.get(pk=spec["validation_data_version_id"]), spec["target_column"], self.task
            )
            self.validation = (valid.X[X.columns], valid.y)


@lru_cache(maxsize=2)
def _data(spec_json: str) -> AutomlData:
    return AutomlData(json.loads(spec_json))


def automl_data(parent: Job) -> AutomlData:
    return _data(json.dumps(parent.spec, sort_keys=True))


def _is_model_name(name) -> bool:
    """The registry's rule for a model's name (on RegisteredModel.name)."""
    try:
        model_validate(RegisteredModel(name=name if isinstance(name, str) else ""), fields=["name"])
    except ValidationError:
        return False
    return True


class AutoMLJob(JobHandler):
    """The run. On a node: read the data, check it (guardrails), plan featurization and validation,
    propose the first trials; then it detaches and its trials carry on."""

    def validate(self, *, workspace, spec) -> CleanSpec:
        if not isinstance(spec, dict):
            raise ValidationError({"spec": ["The spec must be a JSON object."]})
        version = _version(workspace, spec.get("data_version_id"), "data_version_id")
        settings = dict(spec.get("automl") or {})
        try:
            task = check_task(spec.get("task", settings.get("task")))
        except ValueError as exc:
            raise ValidationError({"task": [str(exc)]}) from None
        settings["task"] = task
        register_as = spec.get("register_as") or ""
        if register_as and not _is_model_name(register_as):
            raise ValidationError({"register_as": ["Use letters, digits, dots, hyphens or underscores."]})
        if task == FORECASTING:  # one job backtests its candidates: no trials, no final job
            return forecast_validate(workspace, spec, version)
        target = check_target(version, spec.get("target_column"))
        if task == REGRESSION:
            check_numeric_target(version, target)
        validation_version = None
        if spec.get("validation_data_version_id") is not None:
            validation_version = _version(workspace, spec["validation_data_version_id"], "validation_data_version_id")
            check_target(validation_version, target)
            if task == REGRESSION:
                check_numeric_target(validation_version, target)
        if validation_version is not None:
            settings["validation"] = "validation_set"
        if task == REGRESSION:
            _check_regression_metric(settings, [version, validation_version], target)
        types = {
            c["name"]: c["semantic_type"]
            for c in version.schema.get("columns", [])
            if not c.get("excluded") and c["name"] != target
        }
        settings["column_types"] = {**types, **(settings.get("column_types") or {})}
        try:
            automl = AutoMLSpec.from_dict(settings)
            automl.check()
            check_overrides(automl.column_overrides, list(types))
        except (ValueError, TypeError) as exc:
            raise ValidationError({"automl": [str(exc)]}) from None
        fraction = spec.get("test_fraction", 0.2)
        if not isinstance(fraction, (int, float)) or not (fraction == 0 or 0.05 <= fraction <= 0.45):
            raise ValidationError(
                {"test_fraction": ["Keep 0 (no test split) or 0.05 to 0.45 of the rows for the test."]}
            )
        seed = spec.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValidationError({"seed": ["The seed is a whole number."]})
        return CleanSpec(
            spec={
                "task": task,
                "data_version_id": version.pk,
                "target_column": target,
                "automl": automl.to_dict(),
                "test_fraction": float(fraction),
                "seed": seed,
                "register_as": register_as,
                "validation_data_version_id": validation_version.pk if validation_version else None,
            },
            data_version=version,
        )

    def run(self, ctx):
        if ctx.spec.get("task") == FORECASTING:
            return forecast_run(ctx)
        started = time.perf_counter()
        spec = AutoMLSpec.from_dict(ctx.spec["automl"])
        data = automl_data(ctx.job)
        ctx.log(
            f"Training part: {len(data.X):,} rows × {data.X.shape[1]} columns"
            + (
                f"; test part: {len(data.X_test):,} rows (scored only on the final model)"
                if data.X_test is not None
                else ""
            )
            + f"; primary metric {spec.primary_metric}"
        )
        try:
            setup = automl_setup(
                spec,
                data.X,
                data.y,
                seed=ctx.spec["seed"],
                has_validation_set=data.validation is not None,
                dropped_target_rows=data.dropped_rows,
            )
        except ValueError as exc:
            raise JobError(str(exc)) from None
        for guardrail in setup["guardrails"]:
            ctx.log(f"Guardrail {guardrail['name']}: {guardrail['status']} — {guardrail['message']}")
        ctx.log(f"Validation: {setup['validation']['reason']}; algorithms: {', '.join(setup['algorithms'])}")
        search = AutoMLSearch(spec, setup, seed=ctx.spec["seed"])
        search.ask(spec.max_concurrent_trials)
        ctx.log(f"Set up in {time.perf_counter() - started:.2f} s; starting {len(search.trials)} trials")
        return Detach(
            result={
                "setup": setup,
                "search": search.state(),
                "leaderboard": [],
                "classes": setup["classes"],
                "task": spec.task,
            },
            reason=f"searching: {len(search.trials)} trials queued",
        )

    def on_detached(self, *, job_id: int) -> None:  # never for forecasting: its run does not detach
        automl_services.automl_start(parent_id=job_id)

    def references(self, job) -> list[str]:
        return models_registered_from(job)


class AutoMLTrialJob(JobHandler):
    """One trial of a run: fit and validate one configuration; keep its validation probabilities
    (for ensembles) and its model (for registering any trial)."""

    clone_hint = "clone the Automated ML run it belongs to."

    def references(self, job) -> list[str]:
        return models_registered_from(job)

    def validate(self, *, workspace, spec) -> CleanSpec:
        try:
            TrialSpec.from_dict(spec["trial"])
        except (KeyError, TypeError) as exc:
            raise ValidationError({"trial": [f"Trials are made by Automated ML runs ({exc})."]}) from None
        return CleanSpec(spec=spec)

    def run(self, ctx) -> dict:
        trial = TrialSpec.from_dict(ctx.spec["trial"])
        data = automl_data(ctx.job.parent)
        ctx.log(f"Trial {trial.trial_id}: {trial.algorithm} {trial.params} ({trial.origin})")
        result, model, proba = run_trial(trial, data.X, data.y, data.validation, refit=True)
        save_seconds = 0.0
        if result.status == "succeeded":
            # a regression keeps float64: a price of 1e6 in float32 is good to 0.06 only
            kept = np.float64 if trial.task == REGRESSION else np.float32
            np.save(ctx.artifact_path("oof.npy"), proba.astype(kept), allow_pickle=False)
            ctx.artifact_saved("oof.npy", kind="predictions")
            saving = time.perf_counter()
            save_model(model, ctx.artifact_path("model.skops"))
            ctx.artifact_saved("model.skops", kind="model")
            save_seconds = time.perf_counter() - saving  # the run keeps time to package its ensemble
            _write_signature(ctx, data, trial.classes, trial.task)
            if result.score is None:  # e.g. Spearman of a constant prediction: undefined, ranked last
                ctx.log(f"{trial.primary_metric} undefined in {result.duration_seconds:.2f} s")
            else:
                ctx.metric(trial.primary_metric, result.score)
                ctx.log(f"{trial.primary_metric} {result.score:.4f} in {result.duration_seconds:.2f} s")
        else:
            ctx.log(f"Trial {result.status}: {result.error}")
        return {
            "trial_result": result.to_dict(),
            "save_seconds": round(save_seconds, 3),
            "algorithm": trial.algorithm,
            "params": trial.params,
            "score": result.score,
            "latency_ms": result.latency_ms,
            **{k: result.metrics.get(k) for k in summary_metrics(trial.task)},
            "metrics": result.metrics,
            "classes": trial.classes,
            "task": trial.task,
            "target_transform": trial.target_transform,
        }

    def on_finished(self, *, job_id: int, status: str) -> None:
        parent_id = Job.objects.filter(pk=job_id).values_list("parent_id", flat=True).first()
        if parent_id:
            automl_services.automl_advance(parent_id=parent_id)


def _write_signature(ctx, data: AutomlData, classes, task: str) -> None:
    """A trial's signature: registering a trial's model serves it as the task it was trained for."""
    types = {k: v for k, v in data.column_types.items() if k in data.X.columns}
    signature = build_signature(
        data.X, column_types=types, target=ctx.job.parent.spec["target_column"], classes=classes, task=task
    )
    ctx.artifact_path("signature.json").write_text(json.dumps(signature, default=str))
    ctx.artifact_saved("signature.json", kind="signature")


class AutoMLFinalJob(JobHandler):
    """Choose the final model (the best trial, a voting or a stacking ensemble), score it on the
    test part, draw its charts, rank the raw columns by permutation importance and package it."""

    clone_hint = "clone the Automated ML run it belongs to."

    def references(self, job) -> list[str]:
        return models_registered_from(job)

    def validate(self, *, workspace, spec) -> CleanSpec:
        return CleanSpec(spec={})

    def run(self, ctx) -> dict:
        started = time.perf_counter()
        parent = ctx.job.parent
        spec = AutoMLSpec.from_dict(parent.spec["automl"])
        search = AutoMLSearch.restore(spec, parent.result["setup"], parent.result["search"], seed=parent.spec["seed"])
        data = automl_data(parent)
        classes = search.setup["classes"]
        regression = spec.task == REGRESSION
        summary = summary_metrics(spec.task)
        trial_jobs = {
            j.spec["trial"]["trial_id"]: j
            for j in parent.children.filter(kind=TrainingJobKind.AUTOML_TRIAL, status=JobStatus.COMPLETED)
        }
        predictions = {}
        # the library of trials fast enough can hold slower algorithms' second-best trials
        fast = search.ensemble_library(max_latency_ms=spec.infer_limit_ms)
        for trial_id in dict.fromkeys(fast + search.ensemble_library()):
            job = trial_jobs.get(trial_id)
            if job is not None and (job_artifact_dir(job) / "oof.npy").exists():
                predictions[trial_id] = np.load(job_artifact_dir(job) / "oof.npy", allow_pickle=False)
        if not predictions:
            raise JobError("No trial left validation predictions to build a model from.")
        kind = np.float64 if regression else object
        if data.validation is not None:
            y_eval = np.asarray(data.validation[1], dtype=kind)
        else:
            y_eval = np.asarray(data.y, dtype=kind)[validation_rows(search.setup["validation"], len(data.y), data.y)]
        seconds_left = automl_services.final_seconds_left(parent)
        deadline = time.monotonic() + seconds_left
        # members are taken only from trials whose packaging fits what is left of the budget
        kept, budget_note = automl_services.trials_within_time(
            list(predictions),
            save_seconds={i: (job.result or {}).get("save_seconds", 0.0) for i, job in trial_jobs.items()},
            seconds_left=seconds_left,
        )
        if budget_note:
            ctx.log(f"Time budget: {budget_note}")
        predictions = {i: predictions[i] for i in kept}

        def load_member(trial_id: int):
            artifact = Artifact.objects.get(job=trial_jobs[trial_id], name="model.skops")
            return load_model(job_artifact_dir(trial_jobs[trial_id]) / "model.skops", artifact.sha256)

        final, model = choose_final_model(
            search,
            predictions,
            y_eval,
            load_member,
            data.X,
            data.y,
            infer_limit_ms=spec.infer_limit_ms,
        )
        described = ", ".join(
            f"{search.trial(m['trial_id']).algorithm} (trial {m['trial_id']})" for m in final["members"]
        )
        ctx.log(
            f"Final model: {final['kind']} of {described}; validation {spec.primary_metric} {final['score']:.4f}; "
            f"1-row scoring {final['latency_ms']:.2f} ms"
        )
        for candidate in final.get("candidates", []):
            over = "" if candidate["within_limit"] else f" (over the {spec.infer_limit_ms:g} ms limit)"
            pruned = f"; pruned trials {candidate['pruned']}" if candidate.get("pruned") else ""
            ctx.log(
                f"  candidate {candidate['kind']} of {len(candidate['members'])}: {candidate['score']}, "
                f"{candidate['latency_ms']:.2f} ms{over}{pruned}"
            )
        if not final["infer_limit_met"]:
            ctx.log(
                f"No candidate scores a row within {spec.infer_limit_ms:g} ms; "
                f"kept the fastest ({final['latency_ms']:.2f} ms)"
            )
        X_score, y_score = (data.X_test, data.y_test) if data.X_test is not None else (data.X.iloc[:0], None)
        result = {
            "final_kind": final["kind"],
            "members": final["members"],
            "validation_score": final["score"],
            "candidates": [
                {
                    "kind": c["kind"],
                    "score": c["score"],
                    "members": [m["trial_id"] for m in c["members"]],
                    "latency_ms": c["latency_ms"],
                    "within_limit": c["within_limit"],
                }
                for c in final.get("candidates", [])
            ],
            "latency_ms": final["latency_ms"],
            "infer_limit_ms": spec.infer_limit_ms,
            "infer_limit_met": final["infer_limit_met"],
            "algorithm": final["kind"]
            if final["kind"] != "single"
            else search.trial(final["members"][0]["trial_id"]).algorithm,
        }
        if y_score is not None and len(y_score):
            if regression:
                predicted = predict_values(model, X_score)
                metrics = regression_metrics(np.asarray(y_score, dtype=np.float64), predicted)
                charts = regression_charts(np.asarray(y_score, dtype=np.float64), predicted, seed=parent.spec["seed"])
            else:
                proba = predict_proba_aligned(model, X_score, classes)
                metrics = classification_metrics(np.asarray(y_score, dtype=object), proba, classes)
                charts = classification_charts(np.asarray(y_score, dtype=object), proba, classes)
            ctx.log("Test: " + ", ".join(f"{k} {metrics[k]:.4g}" for k in summary if metrics.get(k) is not None))
            importance = permutation_feature_importance(
                model,
                X_score,
                y_score,
                classes,
                metric=spec.primary_metric,
                n_repeats=3,
                seed=parent.spec["seed"],
                max_rows=2000,
            )
            result.update(test_metrics=metrics, metrics=metrics)
            for name in summary:
                if metrics.get(name) is not None:
                    ctx.metric(f"test_{name}", metrics[name])
            write_json_artifact(ctx, "charts.json", charts, "chart")
            write_json_artifact(ctx, "importance.json", importance, "report")
        elif regression:
            # no test part: the final model's metrics on the validation rows, all six of them
            for member in final["members"]:  # the over-the-limit fallback may pick a trial outside the library
                if member["trial_id"] not in predictions:
                    oof = job_artifact_dir(trial_jobs[member["trial_id"]]) / "oof.npy"
                    predictions[member["trial_id"]] = np.load(oof, allow_pickle=False)
            predicted = _validation_predictions(final, predictions, model)
            result["metrics"] = regression_metrics(y_eval, predicted)
            write_json_artifact(
                ctx, "charts.json", regression_charts(y_eval, predicted, seed=parent.spec["seed"]), "chart"
            )
        else:
            result["metrics"] = {spec.primary_metric: final["score"]}
        write_json_artifact(ctx, "leaderboard.json", search.leaderboard(), "report")
        ctx.check_canceled()
        packaged = package_model(
            ctx,
            model,
            X=data.X,
            X_check=X_score if len(X_score) else data.X.head(2000),
            column_types=data.column_types,
            target=parent.spec["target_column"],
            classes=classes,
            task=spec.task,
            y=data.y,
            latency_ms=final["latency_ms"],
            deadline=deadline,
        )
        result.update(packaged)
        if regression:
            result["task"] = REGRESSION
        result.update({k: result.get("metrics", {}).get(k) for k in summary})
        ctx.log(f"Final model ready in {time.perf_counter() - started:.1f} s")
        return result

    def on_finished(self, *, job_id: int, status: str) -> None:
        automl_services.automl_finish(final_job_id=job_id, status=status)


def _check_regression_metric(settings: dict, versions: list, target: str) -> None:
    """A regression's primary metric: normalised RMSE unless chosen; MAPE only on a target without
    zeros (in the training and the validation data)."""
    metric = settings.setdefault("primary_metric", DEFAULT_PRIMARY_METRIC[REGRESSION])
    try:
        check_primary_metric(metric, REGRESSION)
    except ValueError as exc:
        raise ValidationError({"primary_metric": [str(exc)]}) from None
    if metric == "mape":
        zeros = sum(target_zero_rows(version, target) for version in versions if version is not None)
        if zeros:
            raise ValidationError(
                {
                    "primary_metric": [
                        f"MAPE divides by the target, and {target!r} is 0 in {zeros:,} rows: "
                        "choose another metric (normalised RMSE, RMSE, MAE, R², Spearman)."
                    ]
                }
            )


def _validation_predictions(final: dict, predictions: dict, model) -> np.ndarray:
    """The final regression model's predictions on the validation rows, from its members' ones."""
    ids = [m["trial_id"] for m in final["members"]]
    if final["kind"] == "stacking":
        return model.final_estimator_.predict(np.column_stack([predictions[i] for i in ids]))
    weights = [m["weight"] or 0.0 for m in final["members"]]
    return sum(w * np.asarray(predictions[i], dtype=np.float64) for i, w in zip(ids, weights, strict=True)) / sum(
        weights
    )
