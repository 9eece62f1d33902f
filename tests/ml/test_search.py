import hashlib
import json
import random

import pytest

from training.ml.algorithms import ALGORITHMS
from training.ml.search import AutoMLSearch, AutoMLSpec, automl_setup
from training.ml.trial import TrialResult, TrialSpec

from .conftest import mixed_frame


@pytest.fixture(scope="module")
def data():
    return mixed_frame(200)


def fake_result(trial: TrialSpec, fail: tuple = ()) -> TrialResult:
    """A deterministic stand-in for running the trial: the score is a hash of the configuration."""
    if trial.algorithm in fail:
        return TrialResult(trial_id=trial.trial_id, status="failed", error="boom")
    digest = hashlib.sha256(json.dumps([trial.algorithm, trial.params], sort_keys=True).encode()).digest()
    value = 0.6 + 0.3 * int.from_bytes(digest[:4], "big") / 2**32
    return TrialResult(
        trial_id=trial.trial_id,
        status="succeeded",
        score=value,
        metrics={"auc_weighted": value, "log_loss": 1 - value},
        fit_seconds=0.1,
    )


def drive(search: AutoMLSearch, *, order_seed: int | None = None, fail: tuple = ()) -> list:
    """Run the search like a cluster would: results arrive in a random order, possibly late."""
    rng = random.Random(order_seed)
    running: list[TrialSpec] = []
    for _ in range(10_000):
        if search.is_done():
            break
        running += search.ask(search.spec.max_concurrent_trials)
        if not running:
            continue
        done = running.pop(rng.randrange(len(running)) if order_seed is not None else 0)
        search.tell(done.trial_id, fake_result(done, fail))
    return [(t.algorithm, t.params) for t in search.trials]


def new_search(data, seed=0, **spec) -> AutoMLSearch:
    s = AutoMLSpec.from_dict({"max_trials": 40, "max_concurrent_trials": 3, **spec})
    return AutoMLSearch(s, automl_setup(s, *data, seed=seed), seed=seed)


def test_trial_specs_and_results_are_json(data):
    search = new_search(data)
    trial = search.ask(1)[0]
    assert TrialSpec.from_dict(json.loads(json.dumps(trial.to_dict()))) == trial
    result = fake_result(trial)
    assert TrialResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    json.dumps(search.setup)
    json.dumps(search.state())
    assert trial.algorithm == "logistic_regression" and trial.origin == "portfolio"


def test_the_sequence_of_trials_does_not_depend_on_the_order_results_arrive_in(data):
    in_order = drive(new_search(data))
    shuffled = [drive(new_search(data), order_seed=s) for s in range(3)]
    assert len(in_order) == 40
    assert all(seq == in_order for seq in shuffled)
    other_seed = drive(new_search(data, seed=1))
    assert other_seed[:5] == in_order[:5]  # the portfolio comes first either way
    assert other_seed != in_order  # the local search differs


def test_the_search_moves_beyond_the_portfolio_with_new_configurations(data):
    search = new_search(data)
    drive(search)
    search_trials = [t for t in search.trials if t.origin == "search"]
    assert search_trials
    seen = set()
    for t in search.trials:
        key = json.dumps([t.algorithm, t.params], sort_keys=True)
        assert key not in seen
        seen.add(key)
    for t in search_trials:
        for p in ALGORITHMS[t.algorithm].space:
            value = t.params[p.name]
            assert value in p.choices if p.kind == "choice" else p.low <= value <= p.high


def test_ask_waits_for_the_results_a_trial_depends_on(data):
    search = new_search(data, max_concurrent_trials=2)  # trial k sees trials up to k - 3
    first = search.ask(5)
    assert [t.trial_id for t in first] == [0, 1]  # never more than 2 outstanding
    search.tell(1, fake_result(first[1]))
    assert [t.trial_id for t in search.ask(5)] == [2]
    search.tell(2, fake_result(search.trial(2)))
    assert search.ask(5) == []  # trial 3 needs the result of trial 0
    search.tell(0, fake_result(first[0]))
    assert [t.trial_id for t in search.ask(5)] == [3, 4]


def test_the_state_restores_into_a_search_that_continues_identically(data):
    a = new_search(data)
    for _ in range(4):
        for t in a.ask(3):
            a.tell(t.trial_id, fake_result(t))
    state = json.loads(json.dumps(a.state()))
    b = AutoMLSearch.restore(a.spec, a.setup, state, seed=0)
    assert drive(a) == drive(b)


def test_max_trials_threshold_and_early_stopping_end_the_search(data):
    search = new_search(data, max_trials=7)
    assert len(drive(search)) == 7 and search.stop_reason == "max_trials" and search.is_done()

    search = new_search(data, metric_threshold=0.75, max_concurrent_trials=1)
    drive(search)
    assert search.stop_reason == "metric_threshold"
    assert any(r.score >= 0.75 for r in search.results.values())
    assert len(search.trials) < 40

    search = new_search(data, max_trials=500, early_stop_trials=5, max_concurrent_trials=1)
    drive(search)
    assert search.stop_reason in ("no_improvement", "search_exhausted")
    assert len(search.trials) < 500


def test_the_time_budget_ends_the_search(data):
    search = new_search(data, timeout_s=10)
    assert not search.is_done(elapsed_s=9)
    assert search.is_done(elapsed_s=10) and search.stop_reason == "time_budget"


def test_allowed_and_blocked_algorithms(data):
    search = new_search(data, allowed_algorithms=["lightgbm", "logistic_regression", "knn"], blocked_algorithms=["knn"])
    drive(search)
    assert {t.algorithm for t in search.trials} == {"lightgbm", "logistic_regression"}
    with pytest.raises(ValueError, match="unknown algorithms"):
        AutoMLSpec.from_dict({"allowed_algorithms": ["xgboost"]})
    with pytest.raises(ValueError, match="leaves no algorithm"):
        AutoMLSpec.from_dict({"allowed_algorithms": ["knn"], "blocked_algorithms": ["knn"]})


def test_an_algorithm_that_only_fails_is_skipped(data):
    search = new_search(data, max_concurrent_trials=1)
    sequence = drive(search, fail=("random_forest",))
    assert sum(1 for a, _ in sequence if a == "random_forest") == 1
    assert all(
        r.status == "failed"
        for t, r in ((search.trial(i), r) for i, r in search.results.items())
        if t.algorithm == "random_forest"
    )


def test_algorithms_too_slow_for_large_data_are_skipped():
    X, y = mixed_frame(200)
    setup = automl_setup(AutoMLSpec(), X, y)
    assert "svc" in setup["algorithms"]
    big = [(name, a.max_rows) for name, a in ALGORITHMS.items() if a.max_rows]
    assert ("svc", 8_000) in big


def test_bad_settings_are_refused():
    for bad in (
        {"primary_metric": "r2"},
        {"max_trials": 0},
        {"validation": "loo"},
        {"nope": 1},
        {"class_weighting": "heavy"},
        {"early_stop_trials": 0},
    ):
        with pytest.raises(ValueError):
            AutoMLSpec.from_dict(bad)
