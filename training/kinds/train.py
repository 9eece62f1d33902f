"""The train job: one scikit-learn classifier (or regressor, ``"task": "regression"``) from the
allow-list, its hyperparameters checked against the estimator's own parameters, on a data version
and a target column, validated by holdout or k-fold; logs the metrics, a confusion matrix and a ROC
curve (a regression: predicted against actual and residuals), and saves the fitted pipeline
(featurization included) as a skops file ready for the registry."""

import json
import time

import numpy as np
from django.core.exceptions import ValidationError

from compute.jobs.kinds import CleanSpec, JobHandler
from compute.jobs.runner import JobError
from data.models import DataVersion

from ..datasets import check_numeric_target, check_target, load_training_data
from ..ml.algorithms import algorithms_for, get_algorithm
from ..ml.columns import plan_features
from ..ml.metrics import REGRESSION_DIRECTIONS, classification_charts, regression_charts
from ..ml.tasks import CLASSIFICATION, DEFAULT_PRIMARY_METRIC, REGRESSION, TABULAR_TASKS, check_task
from ..ml.trial import TrialSpec, run_trial
from ..ml.validation import choose_validation, validation_splits
from ..packaging import package_model
from ..registry_selectors import models_registered_from

# The algorithms a user picks by hand (Automated ML searches more).
TRAIN_ALGORITHMS = {
    "logistic_regression": "Logistic regression",
    "random_forest": "Random forest",
    "extra_trees": "Extra trees",
    "gradient_boosting": "Gradient boosting",
    "hist_gradient_boosting": "Histogram gradient boosting",
    "knn": "k-nearest neighbours",
    "svc": "Support vector machine (SVC)",
    "naive_bayes": "Naive Bayes",
}
SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "auc_weighted", "f1_weighted", "log_loss")
REGRESSION_SUMMARY_METRICS = tuple(REGRESSION_DIRECTIONS)


def train_algorithms(task: str = CLASSIFICATION) -> dict[str, str]:
    """{name: label} a user may pick for a train job of this task (a regression: all ten)."""
    return algorithms_for(REGRESSION) if task == REGRESSION else TRAIN_ALGORITHMS


def check_hyperparameters(algorithm: str, params, task: str = CLASSIFICATION) -> dict:
    """Validate against the estimator's own parameters (names and sklearn's constraints)."""
    if not isinstance(params, dict):
        raise ValidationError({"hyperparameters": ["Give hyperparameters as a JSON object."]})
    algo = get_algorithm(algorithm, task)
    estimator = algo.make(algo.defaults(), seed=0, class_weight=None)
    valid = estimator.get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValidationError(
            {
                "hyperparameters": [
                    f"{type(estimator).__name__} has no parameter {', '.join(map(repr, unknown))}. "
                    f"Its parameters: {', '.join(sorted(valid))}."
                ]
            }
        )
    try:
        estimator.set_params(**params)
        estimator._validate_params()  # scikit-learn's own constraints, e.g. C must be > 0
    except Exception as exc:  # noqa: BLE001 - sklearn raises several types; each is a user error here
        raise ValidationError({"hyperparameters": [str(exc)]}) from None
    json.dumps(params)  # stored as JSON
    return params


def _check_validation(validation) -> dict:
    method = validation.get("method") if isinstance(validation, dict) else None
    if method not in ("holdout", "cv"):
        raise ValidationError({"validation": ["Choose holdout (with a fraction) or cv (with a number of folds)."]})
    if method == "holdout":
        fraction = validation.get("holdout_fraction", 0.2)
        if not isinstance(fraction, (int, float)) or not 0.05 <= fraction <= 0.5:
            raise ValidationError({"validation": ["The holdout fraction must be from 0.05 to 0.5."]})
        return {"method": "holdout", "holdout_fraction": float(fraction)}
    folds = validation.get("n_folds", 5)
    if not isinstance(folds, int) or not 2 <= folds <= 20:
        raise ValidationError({"validation": ["Use 2 to 20 folds."]})
    return {"method": "cv", "n_folds": folds}


class TrainJob(JobHandler):
    submittable = True

    def references(self, job) -> list[str]:
        return models_registered_from(job)

    def validate(self, *, workspace, spec) -> CleanSpec:
        if not isinstance(spec, dict):
            raise ValidationError({"spec": ["The spec must be a JSON object."]})
        version_id = spec.get("data_version_id")
        version = (
            DataVersion.objects.filter(pk=version_id, asset__workspace=workspace).select_related("asset").first()
            if isinstance(version_id, int) and not isinstance(version_id, bool)
            else None
        )
        if version is None:
            raise ValidationError(
                {"data_version_id": ValidationError("Choose a data version of this workspace.", code="not_found")}
            )
        errors: dict[str, list] = {}  # every problem at once, not one per round

        def collect(check, *args):
            try:
                return check(*args)
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    errors.setdefault(field, []).extend(messages)

        try:
            task = check_task(spec.get("task"), TABULAR_TASKS)  # forecasting is Automated ML only
        except ValueError as exc:
            errors["task"] = [str(exc)]
            task = CLASSIFICATION
        target = collect(check_target, version, spec.get("target_column"))
        if target is not None and task == REGRESSION:
            collect(check_numeric_target, version, target)
        algorithm = spec.get("algorithm")
        params = None
        allowed = train_algorithms(task)
        if algorithm not in allowed:
            errors["algorithm"] = [f"Choose one of: {', '.join(allowed)}."]
        else:
            params = collect(check_hyperparameters, algorithm, spec.get("hyperparameters") or {}, task)
        validation = collect(
            _check_validation, spec.get("validation") or {"method": "holdout", "holdout_fraction": 0.2}
        )
        seed = spec.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            errors["seed"] = ["The seed is a whole number."]
        if errors:
            raise ValidationError(errors)
        clean = {
            "task": task,
            "data_version_id": version.pk,
            "target_column": target,
            "algorithm": algorithm,
            "hyperparameters": params,
            "validation": validation,
            "seed": seed,
        }
        return CleanSpec(spec=clean, data_version=version)

    def run(self, ctx) -> dict:
        spec = ctx.spec
        if spec.get("task") == REGRESSION:
            return self._run_regression(ctx)
        version = DataVersion.objects.select_related("asset").get(pk=spec["data_version_id"])
        started = time.perf_counter()
        data = load_training_data(version, spec["target_column"])
        classes = sorted(data.y.unique().tolist())
        counts = data.y.value_counts()
        ctx.log(
            f"Loaded {version}: {len(data.X):,} rows, {data.X.shape[1]} feature columns, target "
            f"{spec['target_column']!r} with {len(classes)} classes "
            f"({', '.join(f'{k}: {v:,}' for k, v in counts.items())})"
            + (f"; {data.dropped_rows:,} rows without a target left out" if data.dropped_rows else "")
        )
        if len(classes) < 2:
            raise JobError(f"The target {spec['target_column']!r} has only one class; a classifier needs two or more.")
        try:
            validation = choose_validation(
                len(data.y),
                int(counts.min()),
                method=spec["validation"]["method"],
                n_folds=spec["validation"].get("n_folds"),
                holdout_fraction=spec["validation"].get("holdout_fraction"),
                seed=spec["seed"],
            )
        except ValueError as exc:
            raise JobError(str(exc)) from None
        plan = plan_features(data.X, data.column_types)
        dropped = [f"{c['name']} ({c['dropped']})" for c in plan["columns"] if c["dropped"]]
        if dropped:
            ctx.log(f"Not used as features: {', '.join(dropped)}")
        params = {**get_algorithm(spec["algorithm"]).defaults(), **spec["hyperparameters"]}
        trial = TrialSpec(
            trial_id=0,
            algorithm=spec["algorithm"],
            params=params,
            origin="manual",
            plan=plan,
            validation=validation,
            primary_metric="accuracy",
            classes=classes,
            seed=spec["seed"],
        )
        ctx.log(
            f"Training {TRAIN_ALGORITHMS[spec['algorithm']]} with {spec['hyperparameters'] or 'default settings'}; "
            f"validation: {validation['reason']}"
        )
        ctx.check_canceled()
        result, model, proba = run_trial(trial, data.X, data.y)
        if result.status != "succeeded":
            raise JobError(f"Training failed: {result.error}")
        for step, value in enumerate(result.fold_scores):
            if value is not None:
                ctx.metric("fold_accuracy", value, step=step)
        for name in SUMMARY_METRICS:
            if result.metrics.get(name) is not None:
                ctx.metric(name, result.metrics[name])
        rows = _evaluation_rows(validation, data.y)
        y_eval = data.y.to_numpy() if rows is None else data.y.to_numpy()[rows]
        X_check = data.X.sample(min(len(data.X), 2000), random_state=0) if rows is None else data.X.iloc[rows]
        charts = classification_charts(y_eval, proba, classes)
        ctx.artifact_path("charts.json").write_text(json.dumps(charts))
        ctx.artifact_saved("charts.json", kind="chart")
        ctx.log(
            "Validation: "
            + ", ".join(f"{k} {result.metrics[k]:.4f}" for k in SUMMARY_METRICS if result.metrics.get(k) is not None)
        )
        ctx.check_canceled()
        packaged = package_model(
            ctx,
            model,
            X=data.X,
            X_check=X_check,
            column_types=data.column_types,
            target=spec["target_column"],
            classes=classes,
        )
        ctx.log(f"Done in {time.perf_counter() - started:.1f} s")
        return {
            **{k: result.metrics.get(k) for k in SUMMARY_METRICS},
            "metrics": result.metrics,
            "algorithm": spec["algorithm"],
            "classes": classes,
            "rows": len(data.y),
            "validation": validation["reason"],
            "plan": plan,
            **packaged,
        }

    def _run_regression(self, ctx) -> dict:
        spec = ctx.spec
        version = DataVersion.objects.select_related("asset").get(pk=spec["data_version_id"])
        started = time.perf_counter()
        data = load_training_data(version, spec["target_column"], REGRESSION)
        ctx.log(
            f"Loaded {version}: {len(data.X):,} rows, {data.X.shape[1]} feature columns, target "
            f"{spec['target_column']!r} from {data.y.min():g} to {data.y.max():g} (mean {data.y.mean():g})"
            + (f"; {data.dropped_rows:,} rows without a numeric target left out" if data.dropped_rows else "")
        )
        if data.y.nunique() < 2:
            raise JobError(f"The target {spec['target_column']!r} is constant: a regression needs it to vary.")
        try:
            validation = choose_validation(
                len(data.y),
                len(data.y),
                method=spec["validation"]["method"],
                n_folds=spec["validation"].get("n_folds"),
                holdout_fraction=spec["validation"].get("holdout_fraction"),
                seed=spec["seed"],
                stratified=False,
            )
        except ValueError as exc:
            raise JobError(str(exc)) from None
        plan = plan_features(data.X, data.column_types)
        dropped = [f"{c['name']} ({c['dropped']})" for c in plan["columns"] if c["dropped"]]
        if dropped:
            ctx.log(f"Not used as features: {', '.join(dropped)}")
        params = {**get_algorithm(spec["algorithm"], REGRESSION).defaults(), **spec["hyperparameters"]}
        metric = DEFAULT_PRIMARY_METRIC[REGRESSION]
        trial = TrialSpec(
            trial_id=0,
            algorithm=spec["algorithm"],
            params=params,
            origin="manual",
            plan=plan,
            validation=validation,
            primary_metric=metric,
            classes=[],
            seed=spec["seed"],
            task=REGRESSION,
        )
        label = algorithms_for(REGRESSION)[spec["algorithm"]]
        ctx.log(
            f"Training {label} with {spec['hyperparameters'] or 'default settings'}; validation: {validation['reason']}"
        )
        ctx.check_canceled()
        result, model, predictions = run_trial(trial, data.X, data.y)
        if result.status != "succeeded":
            raise JobError(f"Training failed: {result.error}")
        for step, value in enumerate(result.fold_scores):
            if value is not None:  # undefined on a fold (a constant prediction's Spearman)
                ctx.metric(f"fold_{metric}", value, step=step)
        for name in REGRESSION_SUMMARY_METRICS:
            if result.metrics.get(name) is not None:
                ctx.metric(name, result.metrics[name])
        rows = _evaluation_rows(validation, data.y)
        y_eval = data.y.to_numpy() if rows is None else data.y.to_numpy()[rows]
        X_check = data.X.sample(min(len(data.X), 2000), random_state=0) if rows is None else data.X.iloc[rows]
        charts = regression_charts(y_eval, predictions, seed=spec["seed"])
        ctx.artifact_path("charts.json").write_text(json.dumps(charts))
        ctx.artifact_saved("charts.json", kind="chart")
        ctx.log(
            "Validation: "
            + ", ".join(
                f"{k} {result.metrics[k]:.4g}" for k in REGRESSION_SUMMARY_METRICS if result.metrics.get(k) is not None
            )
        )
        ctx.check_canceled()
        packaged = package_model(
            ctx,
            model,
            X=data.X,
            X_check=X_check,
            column_types=data.column_types,
            target=spec["target_column"],
            classes=[],
            task=REGRESSION,
            y=data.y,
        )
        ctx.log(f"Done in {time.perf_counter() - started:.1f} s")
        return {
            **{k: result.metrics.get(k) for k in REGRESSION_SUMMARY_METRICS},
            "metrics": result.metrics,
            "task": REGRESSION,
            "algorithm": spec["algorithm"],
            "classes": [],
            "rows": len(data.y),
            "validation": validation["reason"],
            "plan": plan,
            **packaged,
        }


def _evaluation_rows(validation: dict, y) -> np.ndarray | None:
    """The rows a trial's probabilities belong to: all rows for CV (None), else the holdout rows."""
    if validation["method"] == "cv":
        return None

    return validation_splits(validation, y.to_numpy())[0][1]
