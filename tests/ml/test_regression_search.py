"""The regression search's own rules: its late no-improvement stop, its boosters' early stopping
and its portfolio of small-leaved boosters (the engine alone; no database)."""

import numpy as np
import pandas as pd
import pytest

from training.ml.algorithms import (
    EARLY_STOPPING_ROUNDS,
    REGRESSION_EARLY_STOPPING_ROUNDS,
    REGRESSION_PORTFOLIO,
    early_stopping_rounds,
)
from training.ml.ensemble import _preferred
from training.ml.search import REGRESSION_EARLY_STOP_BUDGET_SHARE, AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.trial import TrialResult, fit_pipeline, run_trial

from .conftest import mixed_frame


def friedman(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Friedman's first regression problem: non-linear, with interactions and five useless columns."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 10))
    y = 10 * np.sin(np.pi * X[:, 0] * X[:, 1]) + 20 * (X[:, 2] - 0.5) ** 2 + 10 * X[:, 3] + 5 * X[:, 4]
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(10)]), pd.Series(y + rng.normal(0, 1.0, n), name="y")


def regression_search(data, **spec) -> AutoMLSearch:
    s = AutoMLSpec.from_dict({"task": "regression", "max_trials": 500, "max_concurrent_trials": 1, **spec})
    return AutoMLSearch(s, automl_setup(s, *data, seed=0), seed=0)


def flat_result(trial) -> TrialResult:
    """Every trial after the first scores worse than it: the search never improves."""
    value = 0.1 if trial.trial_id == 0 else 0.2
    return TrialResult(trial_id=trial.trial_id, status="succeeded", score=value, metrics={"normalized_rmse": value})


def drive_until(search: AutoMLSearch, n_trials: int, *, elapsed_s: float | None) -> None:
    """Ask and tell one trial at a time (at a fixed clock) until the search stops or has n_trials."""
    while len(search.trials) < n_trials and not search.is_done(elapsed_s=elapsed_s):
        asked = search.ask(1)
        if not asked:
            break
        search.tell(asked[0].trial_id, flat_result(asked[0]))


def test_a_regression_without_gains_stops_only_after_its_share_of_the_budget():
    data = friedman(200)
    patience = 3
    early = regression_search(data, timeout_s=100.0, early_stop_trials=patience)
    drive_until(early, 60, elapsed_s=100.0 * REGRESSION_EARLY_STOP_BUDGET_SHARE - 1)
    # well past the portfolio and the patience, the search goes on while the budget is young
    assert len(early.trials) == 60 and early.stop_reason is None

    # the same search, later on the clock: the no-improvement rule ends it at the next ask
    assert early.is_done(elapsed_s=100.0 * REGRESSION_EARLY_STOP_BUDGET_SHARE)
    assert early.stop_reason == "no_improvement" and early.ask(1) == []

    # a caller without a clock (no elapsed_s) keeps the plain rule: portfolio + patience trials
    clockless = regression_search(data, timeout_s=100.0, early_stop_trials=patience)
    drive_until(clockless, 60, elapsed_s=None)
    assert clockless.stop_reason == "no_improvement"
    assert len(clockless.trials) == len(clockless.portfolio) + patience


def test_a_classification_stops_without_gains_at_any_time():
    s = AutoMLSpec.from_dict(
        {"max_trials": 500, "max_concurrent_trials": 1, "timeout_s": 100.0, "early_stop_trials": 3}
    )
    search = AutoMLSearch(s, automl_setup(s, *mixed_frame(200), seed=0), seed=0)
    while not search.is_done(elapsed_s=1.0):
        asked = search.ask(1)
        if not asked:
            break
        value = 0.9 if asked[0].trial_id == 0 else 0.8
        search.tell(asked[0].trial_id, TrialResult(asked[0].trial_id, "succeeded", value, {"auc_weighted": value}))
    assert search.stop_reason == "no_improvement"
    assert len(search.trials) == len(search.portfolio) + 3


@pytest.mark.parametrize(
    "algorithm, patience",
    [("lightgbm", REGRESSION_EARLY_STOPPING_ROUNDS), ("hist_gradient_boosting", EARLY_STOPPING_ROUNDS)],
)
def test_regression_lightgbm_waits_longer_for_a_validation_gain(algorithm, patience):
    X, y = friedman(600)
    search = regression_search((X, y))
    params = next(p for name, p in REGRESSION_PORTFOLIO if name == algorithm)
    model, info = fit_pipeline(search._make(0, algorithm, params, "portfolio"), X, y)
    booster = model.named_steps["estimator"]
    # rounds boosted: LightGBM keeps only the best ones, but its evaluation log has them all
    trained = len(booster.evals_result_["valid_0"]["l2"]) if algorithm == "lightgbm" else booster.n_iter_
    best = booster.best_iteration_ if algorithm == "lightgbm" else info["rounds"]
    assert (
        early_stopping_rounds("regression")
        == REGRESSION_EARLY_STOPPING_ROUNDS
        > early_stopping_rounds("classification")
    )
    # stopped well before the cap, exactly the patience after the best round
    assert trained < 3000 and trained - best == patience
    assert info["rounds"] == best


def test_the_small_leaved_booster_comes_early_and_beats_the_default_one_in_validation():
    X, y = friedman(800)
    search = regression_search((X, y))
    lightgbm = [(k, params) for k, (name, params) in enumerate(search.portfolio) if name == "lightgbm"]
    (first_at, small), (_, default) = lightgbm[0], lightgbm[1]
    assert first_at == 1  # right after the cheap ridge
    assert small["num_leaves"] < default["num_leaves"] and small["min_child_samples"] < default["min_child_samples"]
    scores = {}
    for k, params in ((0, small), (1, default)):
        result, _, _ = run_trial(search._make(k, "lightgbm", params, "portfolio"), X, y, refit=False)
        assert result.status == "succeeded", result.error
        scores[k] = result.score
    assert scores[0] < scores[1]  # normalised RMSE, cross-validated on the training rows


def test_a_regression_keeps_its_best_trial_over_a_voting_ensemble_that_scores_worse():
    single = {"kind": "single", "members": [{"trial_id": 4, "weight": 1.0}], "score": 0.0503}
    worse = {"kind": "voting", "members": [{"trial_id": 1, "weight": 0.6}, {"trial_id": 2, "weight": 0.4}]}
    better = {**worse, "score": 0.0501}
    worse = {**worse, "score": 0.0505}
    assert _preferred([single, worse], "normalized_rmse") is single
    assert _preferred([single, better], "normalized_rmse") is better
    # a classification keeps preferring a voting ensemble of two or more (its rule, unchanged)
    auc_single, auc_voting = {**single, "score": 0.90}, {**worse, "score": 0.89}
    assert _preferred([auc_single, auc_voting], "auc_weighted") is auc_voting
