"""The regression engine (training/ml, no database): every regressor on a messy frame, the metrics
against scikit-learn's, guardrails (log target, constant target, leaks), ensembles and model files."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn import metrics as skm
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import StackingRegressor, VotingRegressor

from modelformat.modelio import load_model, save_model
from training.ml.algorithms import REGRESSION_ALGORITHMS, algorithms_for, check_algorithms
from training.ml.columns import plan_features
from training.ml.ensemble import build_stacking_model, build_voting_model, choose_final_model
from training.ml.explain import permutation_feature_importance
from training.ml.metrics import is_better, regression_charts, regression_metrics, score
from training.ml.search import AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.tasks import check_task
from training.ml.trial import TrialSpec, predict_values, run_trial
from training.ml.validation import choose_validation, validation_splits

REGRESSORS = [
    "ridge",
    "lasso",
    "elastic_net",
    "random_forest",
    "extra_trees",
    "gradient_boosting",
    "hist_gradient_boosting",
    "lightgbm",
    "knn",
    "svr",
]


def messy(n: int = 160, seed: int = 0, *, skewed: bool = False) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    area = rng.normal(1500, 400, n).clip(300)
    X = pd.DataFrame(
        {
            "Lot ID": [f"L{i:05d}" for i in range(n)],
            "Area (sq ft)": area,
            "Beds #": rng.integers(1, 6, n).astype(float),
            "Zone / District": rng.choice(["north", "south", "east"], n).astype(object),
            "Listed": pd.date_range("2020-01-01", periods=n, freq="5D"),
            "Garage?": rng.choice(["yes", "no"], n).astype(object),
            "Notes": [" ".join(rng.choice(["bright", "old", "new roof", "quiet"], 3)) for _ in range(n)],
        }
    )
    X.loc[::6, "Beds #"] = np.nan
    X.loc[::9, "Zone / District"] = None
    log_price = 11 + area / 1000 + 0.1 * X["Beds #"].fillna(3) + 0.2 * (X["Garage?"] == "yes")
    noise = rng.normal(0, 0.35 if skewed else 0.1, n)
    price = np.exp(log_price + noise) if skewed else 100_000 + 60 * area + 5_000 * X["Beds #"].fillna(3) + 1e4 * noise
    return X, pd.Series(price, name="Sale Price ($)")


def trial(X, algorithm: str, *, params=None, transform=None, validation=None, metric="normalized_rmse") -> TrialSpec:
    return TrialSpec(
        trial_id=0,
        algorithm=algorithm,
        params=params or REGRESSION_ALGORITHMS[algorithm].defaults(),
        origin="portfolio",
        plan=plan_features(X, None),
        validation=validation or choose_validation(len(X), len(X), method="holdout", stratified=False),
        primary_metric=metric,
        classes=[],
        task="regression",
        target_transform=transform,
    )


def roundtrip(model, tmp_path, name: str):
    path = tmp_path / f"{name}.skops"
    return load_model(path, save_model(model, path))


@pytest.mark.parametrize("algorithm", REGRESSORS)
def test_every_regressor_fits_predicts_and_saves_on_messy_data(algorithm, tmp_path):
    X, y = messy()
    result, model, predictions = run_trial(trial(X, algorithm), X, y)
    assert result.status == "succeeded", result.error
    assert set(result.metrics) == {"normalized_rmse", "rmse", "mae", "r2", "spearman", "mape"}
    assert all(v is not None for v in result.metrics.values())
    assert result.metrics["r2"] > 0.3, result.metrics  # scaled targets: even SVR and ridge learn prices
    assert predictions.dtype == np.float64 and predictions.ndim == 1 and result.latency_ms > 0
    loaded = roundtrip(model, tmp_path, algorithm)
    np.testing.assert_allclose(loaded.predict(X.head(20)), model.predict(X.head(20)), rtol=1e-9)


def test_a_log1p_trial_saves_and_predicts_on_the_original_scale(tmp_path):
    X, y = messy(skewed=True)
    cv = choose_validation(len(X), len(X), method="cv", n_folds=3, stratified=False)
    result, model, _ = run_trial(trial(X, "lightgbm", transform="log1p", validation=cv), X, y)
    assert result.status == "succeeded", result.error
    assert isinstance(model.steps[-1][1], TransformedTargetRegressor) and "n_estimators" in result.refit_params
    loaded = roundtrip(model, tmp_path, "log")
    predicted = loaded.predict(X.head(30))
    assert predicted.min() > 10_000  # prices, not log prices
    np.testing.assert_allclose(predicted, model.predict(X.head(30)))


def test_metrics_match_scikit_learn_and_mape_is_null_with_a_zero_target():
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 200)
    pred = y + rng.normal(0, 4, 200)
    m = regression_metrics(y, pred)
    rmse = np.sqrt(skm.mean_squared_error(y, pred))
    assert m["rmse"] == pytest.approx(rmse, abs=1e-6)
    assert m["normalized_rmse"] == pytest.approx(rmse / (y.max() - y.min()), abs=1e-6)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), abs=1e-6)
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred), abs=1e-6)
    assert m["spearman"] == pytest.approx(spearmanr(y, pred).statistic, abs=1e-6)
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred), abs=1e-6)
    assert score("rmse", y, pred, []) == pytest.approx(rmse)
    y[3] = 0.0
    assert regression_metrics(y, pred)["mape"] is None
    assert is_better("rmse", 1.0, 2.0) and is_better("r2", 0.9, 0.8) and not is_better("mae", 3.0, 2.0)


def test_regression_charts_have_the_contract_shape_and_sample_points():
    rng = np.random.default_rng(2)
    y = rng.normal(size=5000)
    charts = regression_charts(y, y * 0.9)
    assert set(charts) == {"task", "predicted_vs_actual", "residual_histogram", "residuals_vs_predicted"}
    assert charts["task"] == "regression" and len(charts["predicted_vs_actual"]["actual"]) == 2000
    assert sum(charts["residual_histogram"]["counts"]) == 5000
    assert len(charts["residual_histogram"]["edges"]) == len(charts["residual_histogram"]["counts"]) + 1
    assert charts == regression_charts(y, y * 0.9)  # seeded


def test_a_skewed_target_gets_log1p_variants_and_the_guardrail_says_so():
    X, y = messy(200, skewed=True)
    spec = AutoMLSpec.from_dict(
        {"task": "regression", "allowed_algorithms": ["ridge", "lightgbm"], "max_trials": 6, "n_folds": 3}
    )
    assert spec.primary_metric == "normalized_rmse"
    setup = automl_setup(spec, X, y, seed=0, dropped_target_rows=4)
    guardrails = {g["name"]: g for g in setup["guardrails"]}
    assert setup["target_transform"] == "log1p" and guardrails["skewed_target"]["status"] == "done"
    assert guardrails["missing_target"]["details"] == {"rows": 4}
    assert setup["classes"] == [] and setup["validation"]["stratified"] is False
    search = AutoMLSearch(spec, setup, seed=0)
    predictions, models = {}, {}
    while asked := search.ask(1):
        for t in asked:
            result, model, oof = run_trial(t, X, y)
            search.tell(t.trial_id, result)
            predictions[t.trial_id], models[t.trial_id] = oof, model
    variants = [t for t in search.trials if t.target_transform == "log1p"]
    assert [t.origin for t in variants][:2] == ["log_target", "log_target"]
    assert {t.algorithm for t in variants} == {"ridge", "lightgbm"}
    best = search.leaderboard()[0]
    assert best["target_transform"] == "log1p"  # the log scale fits a log-normal price better
    final, model = choose_final_model(search, predictions, y.to_numpy(), models.__getitem__, X, y, infer_limit_ms=None)
    assert final["kind"] in ("single", "voting", "stacking") and final["score"] < 0.2
    importance = permutation_feature_importance(model, X, y, [], metric="normalized_rmse", n_repeats=2)
    assert importance[0]["feature"] == "Area (sq ft)"


def test_a_constant_target_mape_on_zeros_and_a_leaking_copy_are_handled():
    X, y = messy(120)
    spec = AutoMLSpec.from_dict({"task": "regression"})
    with pytest.raises(ValueError, match="constant"):
        automl_setup(spec, X, pd.Series(np.full(len(X), 7.0)))
    with pytest.raises(ValueError, match="MAPE"):
        automl_setup(AutoMLSpec.from_dict({"task": "regression", "primary_metric": "mape"}), X, y.where(y.index > 2, 0))
    with pytest.raises(ValueError, match="primary_metric"):
        AutoMLSpec.from_dict({"task": "regression", "primary_metric": "auc_weighted"})
    leaky = X.assign(**{"Price (k$)": y / 1000 + np.random.default_rng(0).normal(0, 0.01, len(y))})
    setup = automl_setup(spec, leaky, y)
    dropped = {c["name"]: c["dropped"] for c in setup["plan"]["columns"]}
    assert dropped["Price (k$)"] == "leak" and dropped["Area (sq ft)"] is None
    leak = next(g for g in setup["guardrails"] if g["name"] == "target_leakage")
    assert leak["status"] == "alerted" and "Price (k$)" in leak["details"]["columns"]


def test_svr_is_skipped_on_large_data_and_names_are_per_task():
    n = 13_000
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    setup = automl_setup(AutoMLSpec.from_dict({"task": "regression", "validation": "holdout"}), X, X["a"] * 3 + 1)
    assert "svr" in setup["skipped_algorithms"] and "svr" not in setup["algorithms"]
    assert list(algorithms_for("regression")) == REGRESSORS
    assert algorithms_for("regression")["svr"] == "Support vector regression (SVR)"
    assert "logistic_regression" in algorithms_for("classification")
    with pytest.raises(ValueError, match="unknown algorithms"):
        check_algorithms(["logistic_regression"], [], "regression")
    assert check_algorithms(["ridge"], [], "regression") == ["ridge"]
    old = {k: v for k, v in trial(X, "ridge").to_dict().items() if k not in ("task", "target_transform")}
    assert TrialSpec.from_dict(old).task == "classification"  # specs stored before regression


def test_regression_folds_are_plain_shuffled_splits():
    plan = choose_validation(100, 100, method="cv", n_folds=4, stratified=False)
    folds = validation_splits(plan, np.arange(100, dtype=float))
    assert len(folds) == 4 and sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(100))
    assert "stratified" not in choose_validation(100, 50, method="cv", n_folds=4)  # classification unchanged


def test_voting_and_stacking_regressors_blend_trials_and_save(tmp_path):
    X, y = messy(150)
    spec = AutoMLSpec.from_dict(
        {
            "task": "regression",
            "allowed_algorithms": ["ridge", "lightgbm", "knn"],
            "max_trials": 3,
            "n_folds": 3,
            "infer_limit_ms": None,
        }
    )
    setup = automl_setup(spec, X, y, seed=0)
    search = AutoMLSearch(spec, setup, seed=0)
    predictions, models = {}, {}
    while asked := search.ask(1):
        for t in asked:
            result, model, oof = run_trial(t, X, y)
            search.tell(t.trial_id, result)
            predictions[t.trial_id], models[t.trial_id] = oof, model
    final, model = choose_final_model(search, predictions, y.to_numpy(), models.__getitem__, X, y, infer_limit_ms=None)
    kinds = {c["kind"]: c for c in final["candidates"]}
    assert set(kinds) == {"single", "voting", "stacking"} and kinds["stacking"]["score"] is not None
    ids = list(predictions)
    voting = build_voting_model(models, {i: 1 / 3 for i in ids}, X, y, regression=True)
    stacking = build_stacking_model(models, predictions, y.to_numpy(), regression=True)
    assert isinstance(stacking, StackingRegressor) and (stacking.final_estimator_.coef_ >= 0).all()
    average = np.mean([models[i].predict(X.head(10)) for i in ids], axis=0)
    np.testing.assert_allclose(voting.predict(X.head(10)), average, rtol=1e-9)
    assert isinstance(voting, VotingRegressor)  # ridge and knn share a featurizer, lightgbm has its own
    for name, built in (("voting", voting), ("stacking", stacking), ("final", model)):
        loaded = roundtrip(built, tmp_path, name)
        np.testing.assert_allclose(loaded.predict(X.head(10)), built.predict(X.head(10)), rtol=1e-9)
    assert predict_values(model, X.head(5)).shape == (5,)


def test_undefined_and_overflowed_metrics_are_null_and_tiny_targets_keep_their_errors():
    y = np.array([1e-6, 2e-6, 3e-6, 4e-6])
    constant = regression_metrics(y, np.full(4, 2.5e-6))
    assert constant["spearman"] is None  # a constant prediction has no rank correlation
    assert constant["rmse"] == pytest.approx(1.118034e-6, rel=1e-6)  # not rounded to 0.0
    overflowed = regression_metrics(np.array([1.0, 2.0]), np.array([np.inf, 1.0]))
    assert overflowed["rmse"] is None and overflowed["mae"] is None


@pytest.mark.parametrize("task", [[], {"a": 1}, 3, "Regression"])
def test_a_task_that_is_not_one_of_the_names_is_a_value_error(task):
    with pytest.raises(ValueError, match="Choose a task"):
        check_task(task)
