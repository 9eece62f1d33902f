"""One trial: build the pipeline a TrialSpec describes, validate it, return scores and predictions.

``TrialSpec`` and ``TrialResult`` are JSON-serialisable (``to_dict``/``from_dict``): they are stored
in the database and sent to worker processes. A worker calls ``run_trial`` with the training data
(and a separate validation set when the plan says so); nothing else crosses the process boundary.
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from lightgbm import early_stopping as lightgbm_early_stopping
from sklearn.compose import TransformedTargetRegressor
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .algorithms import EARLY_STOPPING_ROUNDS, early_stopping_min_delta, early_stopping_rounds, get_algorithm
from .featurize import build_featurizer
from .latency import row_latency_ms
from .metrics import classification_metrics, regression_metrics, score
from .tasks import CLASSIFICATION, REGRESSION
from .validation import validation_splits

REFIT_ROUNDS_FACTOR = 1.1  # the final model sees more rows than a fold, so it gets a few more rounds
EARLY_STOPPING_FRACTION = 0.1
TARGET_TRANSFORMS = (None, "log1p")


class TrialTimeout(Exception):
    """The trial ran past its time limit."""


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run one trial. JSON shape = the field names below."""

    trial_id: int
    algorithm: str
    params: dict
    origin: str  # "portfolio" or "search"
    plan: dict  # featurization plan (columns.plan_features)
    validation: dict  # validation.choose_validation
    primary_metric: str
    classes: list
    class_weight: str | None = None
    seed: int = 0
    time_limit_s: float | None = None
    task: str = CLASSIFICATION  # specs stored before regression existed are classifications
    target_transform: str | None = None  # regression: None or "log1p" (fit on log(1 + y))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrialSpec:
        return cls(**data)

    @property
    def is_regression(self) -> bool:
        return self.task == REGRESSION


@dataclass(frozen=True)
class TrialResult:
    """What a trial reports back. ``score`` is the primary metric on the validation predictions."""

    trial_id: int
    status: str  # "succeeded", "failed" or "timed_out"
    score: float | None = None
    metrics: dict = field(default_factory=dict)
    fold_scores: list = field(default_factory=list)
    refit_params: dict = field(default_factory=dict)  # params for the final refit (e.g. boosting rounds)
    n_features: int | None = None
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    duration_seconds: float = 0.0
    latency_ms: float | None = None  # median 1-row predict_proba of the returned model (latency.py)
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrialResult:
        return cls(**data)


def _time_guard(deadline: float | None):
    """A LightGBM callback that aborts training past the deadline."""

    def callback(env):
        if deadline is not None and time.monotonic() > deadline:
            raise TrialTimeout("time limit reached while boosting")

    callback.order = 5  # run before early stopping
    return callback


def _early_stopping_split(y: np.ndarray, seed: int, *, regression: bool = False):
    """Rows to fit on and rows to pick the number of boosting rounds on (stratified, seeded)."""
    if regression:
        n_stop = max(int(len(y) * EARLY_STOPPING_FRACTION), 20)
        if n_stop >= len(y) // 2:
            return None
        fit_rows, stop_rows = train_test_split(np.arange(len(y)), test_size=n_stop, random_state=seed)
        return np.sort(fit_rows), np.sort(stop_rows)
    n_stop = max(int(len(y) * EARLY_STOPPING_FRACTION), 2 * len(np.unique(y)), 20)
    _, counts = np.unique(y, return_counts=True)
    if n_stop >= len(y) // 2 or counts.min() < 2:
        return None
    rows = np.arange(len(y))
    fit_rows, stop_rows = train_test_split(rows, test_size=n_stop, stratify=y, random_state=seed)
    return np.sort(fit_rows), np.sort(stop_rows)


def fit_pipeline(
    spec: TrialSpec, X: pd.DataFrame, y, *, params: dict | None = None, deadline: float | None = None
) -> tuple[Pipeline, dict]:
    """Fit the trial's Pipeline(featurizer, estimator) on (X, y).

    Boosting algorithms without a fixed ``n_estimators`` pick their number of rounds by early
    stopping on a stratified 10% of (X, y) itself — never on the rows the trial is scored on,
    so validation scores stay honest. ``info["rounds"]`` then says how many rounds were kept.
    """
    algorithm = get_algorithm(spec.algorithm, spec.task)
    params = dict(spec.params if params is None else params)
    featurizer, layout = build_featurizer(spec.plan, algorithm.family, seed=spec.seed, regression=spec.is_regression)
    cats = layout["categorical_indices"]
    y = np.asarray(y, dtype=np.float64) if spec.is_regression else np.asarray(y)
    split = (
        _early_stopping_split(y, spec.seed, regression=spec.is_regression)
        if algorithm.early_stopping and "n_estimators" not in params
        else None
    )
    if algorithm.early_stopping and "n_estimators" not in params and split is None:
        params["n_estimators"] = 100  # too few rows to hold some out: a fixed, modest number of rounds
    estimator = algorithm.make(params, seed=spec.seed, class_weight=spec.class_weight, categorical_indices=cats)
    inner = estimator
    estimator = wrap_target(estimator, scale=algorithm.scale_target, transform=spec.target_transform)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = featurizer.fit_transform(X, y)
        info: dict = {"n_features": int(Z.shape[1])}
        if split is not None:
            fit_rows, stop_rows = split
            Z_fit, y_fit, Z_stop, y_stop = Z[fit_rows], y[fit_rows], Z[stop_rows], y[stop_rows]
            if spec.target_transform == "log1p":
                y_stop = np.log1p(y_stop)  # the wrapped booster sees log targets, so must its stop rows
        else:
            Z_fit, y_fit = Z, y
        if spec.algorithm == "lightgbm":
            fit_kwargs = {"categorical_feature": cats or "auto", "callbacks": [_time_guard(deadline)]}
            if split is not None:
                fit_kwargs["eval_set"] = [(Z_stop, y_stop)]
                fit_kwargs["callbacks"].append(
                    lightgbm_early_stopping(
                        early_stopping_rounds(spec.task), min_delta=early_stopping_min_delta(spec.task), verbose=False
                    )
                )
            estimator.fit(Z_fit, y_fit, **fit_kwargs)
            if split is not None:
                fitted = _fitted_inner(estimator, inner)
                info["rounds"] = int(fitted.best_iteration_ or fitted.n_estimators_)
        elif spec.algorithm == "hist_gradient_boosting" and split is not None:
            estimator.fit(Z_fit, y_fit, X_val=Z_stop, y_val=y_stop)
            info["rounds"] = int(max(_fitted_inner(estimator, inner).n_iter_ - EARLY_STOPPING_ROUNDS, 1))
        else:
            estimator.fit(Z_fit, y_fit)
    return Pipeline([("featurizer", featurizer), ("estimator", estimator)]), info


def wrap_target(estimator, *, scale: bool, transform: str | None):
    """The regressor as fitted: on a standardised target when ``scale`` (linear models, SVR), on
    log(1 + y) when ``transform`` is "log1p" (predictions come back through expm1)."""
    if transform not in TARGET_TRANSFORMS:
        raise ValueError(f"target_transform must be null or log1p, not {transform!r}")
    if scale:
        estimator = TransformedTargetRegressor(regressor=estimator, transformer=StandardScaler())
    if transform == "log1p":
        estimator = TransformedTargetRegressor(
            regressor=estimator, func=np.log1p, inverse_func=np.expm1, check_inverse=False
        )
    return estimator


def _fitted_inner(estimator, inner):
    """The fitted algorithm inside any TransformedTargetRegressor wrapping."""
    while isinstance(estimator, TransformedTargetRegressor):
        estimator = estimator.regressor_
    return estimator if estimator is not None else inner


def predict_values(model, X) -> np.ndarray:
    """A regressor's predictions as float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.predict(X), dtype=np.float64).ravel()


def predict_proba_aligned(model, X, classes) -> np.ndarray:
    """predict_proba with columns in ``classes`` order (a class unseen in training gets 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = model.predict_proba(X)
    model_classes = list(model.classes_)
    if model_classes == list(classes):
        return np.asarray(proba, dtype=np.float64)
    out = np.zeros((len(proba), len(classes)))
    index = {c: i for i, c in enumerate(model_classes)}
    for j, c in enumerate(classes):
        if c in index:
            out[:, j] = proba[:, index[c]]
    return out


def run_trial(spec: TrialSpec, X: pd.DataFrame, y, validation=None, *, refit: bool = True):
    """Run one trial; returns (TrialResult, fitted pipeline or None, validation probabilities or None).

    ``validation`` is None for cross-validation and holdout (the splits come from
    ``spec.validation``) or an ``(X_valid, y_valid)`` pair when the plan is ``validation_set``.
    Probabilities are float32 with columns in ``spec.classes`` order, one row per validation row
    (every training row for CV). With ``refit`` the returned pipeline is trained on all of X
    (an extra fit for CV); otherwise it is the last pipeline fitted (None for CV).
    Exceptions become a "failed" result: a bad configuration must not take the worker down.
    """
    started = time.monotonic()
    deadline = started + spec.time_limit_s if spec.time_limit_s else None
    kind = np.float64 if spec.is_regression else object
    y = np.asarray(y, dtype=kind)
    classes = list(spec.classes)
    fit_s = predict_s = 0.0
    try:
        if spec.validation["method"] == "validation_set":
            if validation is None:
                raise ValueError("this trial validates on a separate validation set, but none was given")
            X_va, y_va = validation[0], np.asarray(validation[1], dtype=kind)
            folds = [(None, None)]
        else:
            folds = validation_splits(spec.validation, y)
        preds, truths, fold_scores, rounds, n_features = [], [], [], [], None
        model = None
        for train_rows, valid_rows in folds:
            if train_rows is None:
                X_tr, y_tr, X_v, y_v = X, y, X_va, y_va
            else:
                X_tr, y_tr = X.iloc[train_rows], y[train_rows]
                X_v, y_v = X.iloc[valid_rows], y[valid_rows]
            t0 = time.monotonic()
            model, info = fit_pipeline(spec, X_tr, y_tr, deadline=deadline)
            t1 = time.monotonic()
            if spec.is_regression:
                proba = predict_values(model, X_v)
            else:
                proba = predict_proba_aligned(model, X_v, classes)
            predict_s += time.monotonic() - t1
            fit_s += t1 - t0
            n_features = info["n_features"]
            if "rounds" in info:
                rounds.append(info["rounds"])
            preds.append(proba)
            truths.append(y_v)
            fold_scores.append(score(spec.primary_metric, y_v, proba, classes))
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimeout(f"time limit of {spec.time_limit_s:g}s reached")
        # regression predictions stay float64: a price of 1e6 in float32 is only good to 0.06
        out_type = np.float64 if spec.is_regression else np.float32
        if spec.validation["method"] == "cv":
            shape = (len(y),) if spec.is_regression else (len(y), len(classes))
            oof = np.zeros(shape, dtype=out_type)
            for (_, valid_rows), proba in zip(folds, preds, strict=True):
                oof[valid_rows] = proba
            y_eval = y
        else:
            oof = preds[0].astype(out_type)
            y_eval = truths[0]
        refit_params = dict(spec.params)
        if rounds:
            refit_params["n_estimators"] = max(1, int(round(float(np.mean(rounds)) * REFIT_ROUNDS_FACTOR)))
        if spec.is_regression:
            metrics = regression_metrics(y_eval, oof)
        else:
            metrics = classification_metrics(y_eval, oof, classes)
        final_model = None
        if refit:
            if spec.validation["method"] == "cv":
                t0 = time.monotonic()
                final_model, _ = fit_pipeline(spec, X, y, params=refit_params, deadline=deadline)
                fit_s += time.monotonic() - t0
            else:
                final_model = model
        # measured here, where the model is made, so the final job can leave out slow candidates
        latency_ms = row_latency_ms(final_model, X.iloc[:1]) if final_model is not None else None
        result = TrialResult(
            trial_id=spec.trial_id,
            status="succeeded",
            score=metrics[spec.primary_metric],
            metrics=metrics,
            fold_scores=[round(float(s), 6) if np.isfinite(s) else None for s in fold_scores],  # JSON: no NaN
            refit_params=refit_params,
            n_features=n_features,
            fit_seconds=round(fit_s, 4),
            predict_seconds=round(predict_s, 4),
            duration_seconds=round(time.monotonic() - started, 4),
            latency_ms=latency_ms,
        )
        return result, final_model, oof
    except TrialTimeout as exc:
        return _failure(spec, "timed_out", str(exc), started), None, None
    except Exception as exc:  # noqa: BLE001 - a failing configuration is a result, not a crash
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return _failure(spec, "failed", detail[:2000], started), None, None


def _failure(spec: TrialSpec, status: str, error: str, started: float) -> TrialResult:
    return TrialResult(
        trial_id=spec.trial_id, status=status, error=error, duration_seconds=round(time.monotonic() - started, 4)
    )


def fit_final_pipeline(spec: TrialSpec, result: TrialResult, X: pd.DataFrame, y) -> Pipeline:
    """Refit a finished trial's pipeline on all the training data with its ``refit_params``."""
    kind = np.float64 if spec.is_regression else object
    model, _ = fit_pipeline(spec, X, np.asarray(y, dtype=kind), params=result.refit_params)
    return model
