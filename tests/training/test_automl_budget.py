"""The final model fits the run's time budget: the trials whose packaging would end after it are
left out of the ensembles before any is built (engine-only, no workers)."""

from training.automl_services import final_seconds_estimate, trials_within_time


def test_when_everything_fits_every_trial_is_kept_without_a_note():
    kept, note = trials_within_time([3, 1, 2], save_seconds={1: 0.1, 2: 0.1, 3: 0.1}, seconds_left=60)
    assert kept == [3, 1, 2] and note == ""


def test_a_heavy_trial_is_left_out_and_the_rest_fits():
    saves = {1: 0.1, 2: 20.0, 3: 0.1, 4: 0.2}
    left = final_seconds_estimate([1, 3, 4], saves) + 1
    kept, note = trials_within_time([1, 2, 3, 4], save_seconds=saves, seconds_left=left)
    assert kept == [1, 3, 4]
    assert final_seconds_estimate(kept, saves) <= left
    assert "[2]" in note and "left out" in note


def test_with_no_time_left_the_trial_quickest_to_package_is_kept():
    kept, note = trials_within_time([5, 6, 7], save_seconds={5: 3.0, 6: 1.0, 7: 2.0}, seconds_left=0)
    assert kept == [6] and "[5, 7]" in note
