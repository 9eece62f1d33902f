import numpy as np
import pytest

from training.ml.validation import choose_validation, split_test, validation_rows, validation_splits


def test_auto_picks_cross_validation_for_small_data_and_holdout_for_large():
    assert choose_validation(500, 100)["n_folds"] == 10
    assert choose_validation(5_000, 100)["n_folds"] == 5
    large = choose_validation(50_000, 1_000)
    assert large["method"] == "holdout" and large["fraction"] == 0.1


def test_explicit_settings_are_kept_and_checked():
    assert choose_validation(500, 100, method="cv", n_folds=3)["n_folds"] == 3
    assert choose_validation(500, 100, method="holdout", holdout_fraction=0.25)["fraction"] == 0.25
    assert choose_validation(500, 100, method="validation_set")["method"] == "validation_set"
    with pytest.raises(ValueError):
        choose_validation(500, 100, method="cv", n_folds=1)
    with pytest.raises(ValueError):
        choose_validation(500, 1)
    with pytest.raises(ValueError):
        choose_validation(500, 100, method="bootstrap")


def test_splits_are_stratified_and_reproducible():
    y = np.array(["a"] * 80 + ["b"] * 20)
    plan = choose_validation(100, 20, method="cv", n_folds=5, seed=3)
    folds = validation_splits(plan, y)
    assert len(folds) == 5
    assert all((y[valid] == "b").sum() == 4 for _, valid in folds)
    again = validation_splits(plan, y)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))
    holdout = choose_validation(100, 20, method="holdout", holdout_fraction=0.2)
    rows = validation_rows(holdout, 100, y)
    assert len(rows) == 20 and (y[rows] == "b").sum() == 4


def test_test_split_is_stratified():
    X = np.arange(200).reshape(-1, 1)
    y = np.array(["a"] * 150 + ["b"] * 50)
    X_tr, X_te, y_tr, y_te = split_test(X, y, 0.2)
    assert len(y_te) == 40 and (y_te == "b").sum() == 10
