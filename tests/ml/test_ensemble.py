import json

import numpy as np
import pytest
from sklearn.ensemble import StackingClassifier, VotingClassifier

from training.ml.ensemble import (
    assemble_final_model,
    member_ids,
    plan_final_model,
    stacking_ensemble,
    voting_ensemble,
)
from training.ml.metrics import score
from training.ml.search import AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.trial import run_trial

from .conftest import mixed_frame


def _noisy(truth_codes, k, noise, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, noise, (len(truth_codes), k)) + np.eye(k)[truth_codes]
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_ensemble_selection_blends_independent_models_and_beats_each():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    codes = rng.integers(0, 3, 1500)
    y = np.asarray(classes, dtype=object)[codes]
    predictions = {i: _noisy(codes, 3, 1.2, seed=i) for i in range(5)}
    predictions[9] = np.full((1500, 3), 1 / 3)  # a useless model
    voting = voting_ensemble(predictions, y, classes, "auc_weighted")
    json.dumps(voting)
    weights = {m["trial_id"]: m["weight"] for m in voting["members"]}
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(weights) >= 3 and 9 not in weights
    assert voting["score"] > max(score("auc_weighted", y, p, classes) for p in predictions.values())
    assert voting == voting_ensemble(predictions, y, classes, "auc_weighted")  # deterministic


def test_selection_works_for_a_metric_where_smaller_is_better():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 2, 800)
    y = np.where(codes == 1, "yes", "no").astype(object)
    predictions = {i: _noisy(codes, 2, 1.0, seed=i) for i in range(4)}
    voting = voting_ensemble(predictions, y, ["no", "yes"], "log_loss")
    assert voting["score"] < min(score("log_loss", y, p, ["no", "yes"]) for p in predictions.values())
    stacking = stacking_ensemble(predictions, y, ["no", "yes"], "log_loss")
    assert stacking["kind"] == "stacking" and len(stacking["members"]) == 4


@pytest.fixture(scope="module")
def finished_search():
    X, y = mixed_frame(300, seed=2, classes=3)
    spec = AutoMLSpec.from_dict(
        {"max_trials": 8, "validation": "cv", "n_folds": 3, "blocked_algorithms": ["random_forest", "svc"]}
    )
    setup = automl_setup(spec, X, y)
    search = AutoMLSearch(spec, setup)
    predictions, models = {}, {}
    while not search.is_done():
        for trial in search.ask(1):
            result, model, proba = run_trial(trial, X, y)
            search.tell(trial.trial_id, result)
            predictions[trial.trial_id], models[trial.trial_id] = proba, model
    return X, y, search, predictions, models


def test_the_final_model_plan_is_json_and_picks_an_ensemble(finished_search):
    X, y, search, predictions, models = finished_search
    final = plan_final_model(search, predictions, y)
    json.loads(json.dumps(final))
    assert [c["kind"] for c in final["candidates"]] == ["single", "voting", "stacking"]
    assert final["kind"] in ("voting", "stacking") and len(final["members"]) >= 2
    assert final["members"][0]["trial_id"] in search.best_trials(3)


@pytest.mark.parametrize("kind", ["single", "voting", "stacking"])
def test_every_final_model_kind_is_one_estimator_on_raw_columns(finished_search, kind):
    X, y, search, predictions, models = finished_search
    plan = next(c for c in plan_final_model(search, predictions, y)["candidates"] if c["kind"] == kind)
    model = assemble_final_model(plan, models, predictions, y, X, y)
    proba = model.predict_proba(X.head(20))
    assert proba.shape == (20, 3) and np.allclose(proba.sum(axis=1), 1)
    assert list(model.classes_) == search.setup["classes"]
    assert set(model.predict(X.head(20))) <= set(search.setup["classes"])
    expected_type = {"voting": VotingClassifier, "stacking": StackingClassifier}.get(kind)
    if expected_type:
        assert isinstance(model, expected_type)
        assert len(member_ids(plan)) >= 2
