import json
import time

import numpy as np
import palmerpenguins
import pytest

from training.ml.algorithms import ALGORITHMS, PORTFOLIO
from training.ml.search import AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.trial import TrialResult, fit_final_pipeline, run_trial

from .conftest import make_trial, mixed_frame, setup_for

FIRST_CONFIG = {name: next(p for a, p in PORTFOLIO if a == name) for name in ALGORITHMS}


@pytest.fixture(scope="module")
def binary():
    X, y = mixed_frame(240, seed=0)
    return X, y, setup_for(X, y, validation="cv", n_folds=3)


@pytest.fixture(scope="module")
def multiclass():
    X, y = mixed_frame(240, seed=1, classes=3)
    return X, y, setup_for(X, y, validation="holdout", holdout_fraction=0.25)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_runs_a_cross_validated_trial_on_raw_columns(binary, algorithm):
    X, y, setup = binary
    result, model, proba = run_trial(make_trial(setup, algorithm, FIRST_CONFIG[algorithm]), X, y)
    assert result.status == "succeeded", result.error
    assert proba.shape == (240, 2) and proba.dtype == np.float32
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert len(result.fold_scores) == 3
    assert result.score == result.metrics["auc_weighted"] > 0.6
    assert model.predict_proba(X.head(5)).shape == (5, 2)  # refit on all rows, raw columns in
    json.dumps(result.to_dict())


def test_a_holdout_trial_predicts_the_holdout_rows_only(multiclass):
    X, y, setup = multiclass
    result, model, proba = run_trial(make_trial(setup, "lightgbm", FIRST_CONFIG["lightgbm"]), X, y)
    assert result.status == "succeeded"
    assert proba.shape == (60, 3)
    assert list(model.classes_) == setup["classes"] == ["high", "low", "mid"]


def test_boosting_picks_its_rounds_and_the_refit_uses_them(binary):
    X, y, setup = binary
    trial = make_trial(setup, "lightgbm", FIRST_CONFIG["lightgbm"])
    result, _, _ = run_trial(trial, X, y, refit=False)
    rounds = result.refit_params["n_estimators"]
    assert 1 <= rounds < 3000
    final = fit_final_pipeline(trial, result, X, y)
    assert final.named_steps["estimator"].n_estimators == rounds


def test_trials_are_deterministic(binary):
    X, y, setup = binary
    trial = make_trial(setup, "lightgbm", FIRST_CONFIG["lightgbm"])
    a, _, pa = run_trial(trial, X, y, refit=False)
    b, _, pb = run_trial(trial, X, y, refit=False)
    assert a.score == b.score and np.array_equal(pa, pb)


def test_a_failing_configuration_is_a_failed_result_not_a_crash(binary):
    X, y, setup = binary
    result, model, proba = run_trial(make_trial(setup, "knn", {"n_neighbors": 10_000, "weights": "uniform"}), X, y)
    assert result.status == "failed" and "n_neighbors" in result.error
    assert model is None and proba is None


def test_a_trial_past_its_time_limit_times_out(binary):
    X, y, setup = binary
    trial = make_trial(setup, "random_forest", FIRST_CONFIG["random_forest"], time_limit_s=0.001)
    result, _, _ = run_trial(trial, X, y)
    assert result.status == "timed_out"


def test_a_separate_validation_set(binary):
    X, y, _ = binary
    X_valid, y_valid = mixed_frame(100, seed=5)
    setup = automl_setup(AutoMLSpec(), X, y, has_validation_set=True)
    assert setup["validation"]["method"] == "validation_set"
    trial = make_trial(setup, "logistic_regression", {"C": 1.0})
    result, model, proba = run_trial(trial, X, y, (X_valid, y_valid))
    assert result.status == "succeeded" and proba.shape == (100, 2)
    missing, _, _ = run_trial(trial, X, y)
    assert missing.status == "failed" and "validation set" in missing.error


def test_results_round_trip_through_json():
    result = TrialResult(trial_id=3, status="succeeded", score=0.9, metrics={"auc_weighted": 0.9})
    assert TrialResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_the_first_penguins_trial_finishes_well_under_a_second_of_engine_time():
    """Set-up plus the search's first proposal: what makes the first leaderboard row appear fast."""
    df = palmerpenguins.load_penguins()
    y = df.pop("species").astype(str)
    started = time.perf_counter()
    spec = AutoMLSpec.from_dict({"max_concurrent_trials": 2})
    setup = automl_setup(spec, df, y)
    trial = AutoMLSearch(spec, setup).ask(1)[0]
    result, _, _ = run_trial(trial, df, y, refit=False)
    elapsed = time.perf_counter() - started
    assert result.status == "succeeded" and result.score > 0.99
    # A generous bound (CI machines are noisy); bench/automl.py reports the figure through the product.
    assert elapsed < 5.0, f"first trial took {elapsed:.2f}s of engine time"
