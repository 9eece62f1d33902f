"""The final model is built for serving: pruned members, one featurizer per identical group, and
an inference-time limit that keeps slow candidates from being chosen."""

import dataclasses

import numpy as np
import pytest
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from modelformat.modelio import load_model, save_model
from training.ml.algorithms import ALGORITHMS
from training.ml.ensemble import build_voting_model, choose_final_model, featurizer_groups, prune_members
from training.ml.latency import row_latency_ms
from training.ml.metrics import score
from training.ml.search import DEFAULT_INFER_LIMIT_MS, AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.trial import run_trial
from training.ml.validation import validation_rows

from .conftest import mixed_frame

CLASSES = ["no", "yes"]


def _noisy(codes, noise, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, noise, (len(codes), 2)) + np.eye(2)[codes]
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_members_that_add_little_are_pruned_lightest_first_and_useful_ones_kept():
    codes = np.random.default_rng(0).integers(0, 2, 1000)
    y = np.asarray(CLASSES, dtype=object)[codes]
    predictions = {
        0: _noisy(codes, 1.0, 1),
        1: _noisy(codes, 1.0, 2),
        2: _noisy(codes, 3.0, 3),
        3: _noisy(codes, 3.0, 4),
    }
    voting = {
        "kind": "voting",
        "members": [
            {"trial_id": 0, "weight": 0.5},
            {"trial_id": 1, "weight": 0.47},
            {"trial_id": 2, "weight": 0.02},
            {"trial_id": 3, "weight": 0.01},
        ],
        "score": None,
    }
    full = score("auc_weighted", y, sum(m["weight"] * predictions[m["trial_id"]] for m in voting["members"]), CLASSES)
    pruned = prune_members(voting, predictions, y, CLASSES, "auc_weighted", tolerance=1e-3)
    assert pruned["pruned"] == [3, 2]  # the lightest first
    assert [m["trial_id"] for m in pruned["members"]] == [0, 1]
    assert sum(m["weight"] for m in pruned["members"]) == pytest.approx(1.0, abs=1e-5)
    assert abs(pruned["score"] - full) < 1e-3
    # the two strong members each carry real signal: dropping either moves the score past the tolerance
    alone = score("auc_weighted", y, predictions[0], CLASSES)
    assert abs(alone - full) >= 1e-3
    assert prune_members(voting, predictions, y, CLASSES, "auc_weighted", tolerance=0.0)["pruned"] == []


@pytest.fixture(scope="module")
def trained():
    """Trials of every featurizer family (linear, tree, boosting), refit on all rows."""
    X, y = mixed_frame(300, seed=3)
    spec = AutoMLSpec.from_dict(
        {
            "validation": "holdout",
            "max_trials": 6,
            "early_stop_trials": None,
            "allowed_algorithms": [
                "logistic_regression",
                "naive_bayes",
                "extra_trees",
                "random_forest",
                "lightgbm",
                "hist_gradient_boosting",
            ],
        }
    )
    setup = automl_setup(spec, X, y)
    search = AutoMLSearch(spec, setup)
    predictions, models = {}, {}
    while not search.is_done():
        for trial in search.ask(1):
            result, model, proba = run_trial(trial, X, y)
            search.tell(trial.trial_id, result)
            predictions[trial.trial_id], models[trial.trial_id] = proba, model
    assert all(r.status == "succeeded" for r in search.results.values())
    return X, y, search, predictions, models


def _unshared(models, weights, X, y):
    """The ensemble as it was built before: every member computes its own featurizer."""
    voter = VotingClassifier(
        [(f"trial_{i}", FrozenEstimator(models[i])) for i in weights], voting="soft", weights=list(weights.values())
    )
    return voter.fit(X.head(40), np.asarray(y, dtype=object)[:40])


def test_members_sharing_a_featurizer_featurise_once_with_identical_predictions(trained, tmp_path):
    X, y, search, _, models = trained
    weights = {i: 1.0 + i for i in models}
    families = {search.trial(i).algorithm: i for i in models}
    groups = featurizer_groups(models)
    family = {i: ALGORITHMS[search.trial(i).algorithm].family for i in models}
    assert len(groups) == len(set(family.values())) == 3 and len(groups) < len(models)  # one per family
    assert all(len({family[i] for i in group}) == 1 for group in groups)
    shared = build_voting_model(models, weights, X, y)
    reference = _unshared(models, weights, X, y)
    assert np.abs(shared.predict_proba(X) - reference.predict_proba(X)).max() < 1e-9
    assert list(shared.predict(X)) == list(reference.predict(X))
    # no member computes a featurizer of its own: each group is Pipeline(featurizer, plain voter)
    assert sum(isinstance(part.steps[1][1], VotingClassifier) for part in shared.estimators_) == 2
    for part in shared.estimators_:
        assert isinstance(part, Pipeline)
        if isinstance(part.steps[1][1], VotingClassifier):
            assert not any(isinstance(e, (Pipeline, FrozenEstimator)) for e in part.steps[1][1].estimators_)
    # it saves and loads with the reviewed allow-list, and takes raw columns
    sha = save_model(shared, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops", sha)
    assert np.abs(loaded.predict_proba(X.head(50)) - reference.predict_proba(X.head(50))).max() < 1e-9
    # members of one family only (boosting): the model is one Pipeline(featurizer, VotingClassifier)
    boosting = {families["lightgbm"]: 0.7, families["hist_gradient_boosting"]: 0.3}
    one = build_voting_model(models, boosting, X, y)
    assert isinstance(one, Pipeline) and isinstance(one.steps[1][1], VotingClassifier)
    assert np.abs(one.predict_proba(X) - _unshared(models, boosting, X, y).predict_proba(X)).max() < 1e-9


def _with_latencies(search, latencies: dict) -> AutoMLSearch:
    copy = AutoMLSearch.restore(search.spec, search.setup, search.state(), seed=search.seed)
    copy.results = {i: dataclasses.replace(r, latency_ms=latencies[i]) for i, r in copy.results.items()}
    return copy


def test_candidates_slower_than_the_limit_are_never_the_final_model(trained):
    X, y, search, predictions, models = trained
    best = search.best_trials(1)[0]
    slow = _with_latencies(search, {i: 5000.0 if i == best else 1.0 for i in search.results})
    y_valid = np.asarray(y, dtype=object)[validation_rows(search.setup["validation"], len(y), y)]
    assert best not in slow.ensemble_library(max_latency_ms=2000)
    assert best in slow.ensemble_library()

    plan, model = choose_final_model(slow, predictions, y_valid, models.get, X, y, infer_limit_ms=2000)
    assert plan["infer_limit_met"] and plan["latency_ms"] <= 2000
    assert best not in [m["trial_id"] for m in plan["members"]]
    for candidate in plan["candidates"]:
        assert best not in [m["trial_id"] for m in candidate["members"]]
        assert candidate["latency_ms"] > 0 and candidate["within_limit"] == (candidate["latency_ms"] <= 2000)
    assert model.predict_proba(X.head(5)).shape == (5, 2)

    free, _ = choose_final_model(slow, predictions, y_valid, models.get, X, y, infer_limit_ms=None)
    assert best in [m["trial_id"] for c in free["candidates"] for m in c["members"]]

    # nothing fast enough: the fastest trial is kept, and the plan says the limit was not met
    latencies = {i: 10.0 + i for i in search.results}
    fallback, model = choose_final_model(
        _with_latencies(search, latencies), predictions, y_valid, models.get, X, y, infer_limit_ms=0.5
    )
    fastest = min(search.results, key=latencies.get)
    assert not fallback["infer_limit_met"] and fallback["kind"] == "single"
    assert [c["within_limit"] for c in fallback["candidates"]] == [False]
    assert fallback["members"] == [{"trial_id": fastest, "weight": 1.0}] and model is models[fastest]


def test_each_trial_measures_its_one_row_latency(trained):
    X, _, search, _, models = trained
    assert all(r.latency_ms is not None and r.latency_ms > 0 for r in search.results.values())
    assert row_latency_ms(models[0], X.iloc[:1]) > 0
    with pytest.raises(ValueError, match="one row"):
        row_latency_ms(models[0], X.head(2))


def test_the_limit_defaults_to_10_ms_and_null_means_best_accuracy_regardless():
    assert AutoMLSpec.from_dict({}).infer_limit_ms == DEFAULT_INFER_LIMIT_MS == 10.0
    assert AutoMLSpec.from_dict({"infer_limit_ms": None}).infer_limit_ms is None
    for bad in (0, -3, "fast", True):
        with pytest.raises(ValueError, match="infer_limit_ms"):
            AutoMLSpec.from_dict({"infer_limit_ms": bad})
