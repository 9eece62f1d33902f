"""The final model fits the run's time budget: a plan whose packaging would end late is
replaced by a lighter one (engine-only: a small finished search, no workers)."""

import pytest

from tests.ml.conftest import mixed_frame
from training.automl_services import final_plan_within_time, final_seconds_estimate
from training.ml.ensemble import member_ids, plan_final_model
from training.ml.search import AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.trial import run_trial


@pytest.fixture(scope="module")
def finished():
    X, y = mixed_frame(300, seed=2, classes=3)
    spec = AutoMLSpec.from_dict(
        {"max_trials": 8, "validation": "cv", "n_folds": 3, "blocked_algorithms": ["random_forest", "svc"]}
    )
    search = AutoMLSearch(spec, automl_setup(spec, X, y))
    predictions = {}
    while not search.is_done():
        for trial in search.ask(1):
            result, _, proba = run_trial(trial, X, y, refit=False)
            search.tell(trial.trial_id, result)
            if proba is not None:
                predictions[trial.trial_id] = proba
    plan = plan_final_model(search, predictions, y)
    voting = next(c for c in plan["candidates"] if c["kind"] == "voting")
    final = {**voting, "candidates": plan["candidates"]}  # the voting ensemble as the chosen plan
    assert len(final["members"]) >= 3  # the case under test
    return search, predictions, y.to_numpy(dtype=object), final


def test_a_plan_that_fits_is_kept(finished):
    search, predictions, y, final = finished
    saves = {i: 0.1 for i in predictions}
    kept = final_plan_within_time(
        final, search=search, save_seconds=saves, seconds_left=60, predictions=predictions, y_eval=y
    )
    assert kept is final and "budget_note" not in kept


def test_the_heaviest_member_is_dropped_first_and_the_lighter_plan_fits(finished):
    search, predictions, y, final = finished
    heaviest = final["members"][-1]["trial_id"]
    saves = {i: 0.1 for i in predictions} | {heaviest: 20.0}
    left = final_seconds_estimate(member_ids(final), saves) - 1
    lighter = final_plan_within_time(
        final, search=search, save_seconds=saves, seconds_left=left, predictions=predictions, y_eval=y
    )
    assert heaviest not in member_ids(lighter) and lighter["kind"] == "voting"
    assert final_seconds_estimate(member_ids(lighter), saves) <= left
    assert sum(m["weight"] for m in lighter["members"]) == pytest.approx(1.0, abs=1e-5)
    assert 0.5 < lighter["score"] <= 1 and "budget_note" in lighter


def test_with_no_time_left_the_cheapest_single_trial_is_the_model(finished):
    search, predictions, y, final = finished
    saves = {i: 1.0 + i for i in predictions}
    lighter = final_plan_within_time(
        final, search=search, save_seconds=saves, seconds_left=0, predictions=predictions, y_eval=y
    )
    assert lighter["kind"] == "single"
    assert member_ids(lighter) == [min(predictions)]
