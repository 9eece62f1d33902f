"""Regression tests for the causes found on the real-data corpus (tests/data/corpus): each table
here has the trait of a corpus file whose models had no ONNX twin, and the studio's own models of
it must convert and verify within 1e-5.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from endpoints.scoring.onnx_export import try_convert
from endpoints.scoring.signature import build_signature, unused_columns
from training.ml.algorithms import ALGORITHMS
from training.ml.columns import plan_features
from training.ml.trial import TrialSpec, fit_pipeline

MAX_DIFF = 1e-5


def _fit(algorithm: str, X: pd.DataFrame, y: np.ndarray, types: dict):
    params = {**ALGORITHMS[algorithm].defaults()}
    if "n_estimators" in params:
        params["n_estimators"] = 30
    spec = TrialSpec(
        trial_id=0,
        algorithm=algorithm,
        params=params,
        origin="manual",
        plan=plan_features(X, types),
        validation={"method": "holdout"},
        primary_metric="accuracy",
        classes=sorted(set(y)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_pipeline(spec, X, y)[0]


def _convert(model, X: pd.DataFrame, types: dict) -> dict:
    signature = build_signature(
        X,
        column_types=types,
        target="alarm",
        classes=[str(c) for c in model.classes_],
        optional=unused_columns(model, X.columns),
    )
    _, report = try_convert(model, signature, X)
    return report


def two_date_columns(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """sensors.csv, ticket_codes.csv, clinic_visits.csv: two datetime columns (one zone-aware)."""
    rng = np.random.default_rng(seed)
    local = pd.Series(pd.date_range("2024-03-01 06:00", periods=n, freq="37min"))
    X = pd.DataFrame(
        {
            "recorded at": (local + pd.to_timedelta(rng.integers(-5, 3, n), unit="h")).dt.tz_localize("UTC"),
            "local time": local,
            "temp.c": rng.normal(50, 5, n),
        }
    )
    X.loc[::23, "local time"] = pd.NaT
    y = np.where((local.dt.hour > 12) ^ (X["temp.c"] > 52), "Y", "N")
    return X, y, {"recorded at": "datetime", "local time": "datetime", "temp.c": "numeric"}


@pytest.mark.parametrize("algorithm", ["logistic_regression", "random_forest"])
def test_two_datetime_columns_convert_each_from_its_own_column(algorithm):
    # DatetimeParts got one [N, 2] input and computed every part of both columns side by side:
    # too many features (a shape error for linear models), or the columns' parts in another order.
    X, y, types = two_date_columns()
    model = _fit(algorithm, X, y, types)
    assert len(model.named_steps["featurizer"].named_transformers_["datetime"].named_steps["parts"].columns_) == 2
    report = _convert(model, X, types)
    assert report["converted"] is True, (report["reason"], report["detail"])
    assert report["max_abs_diff"] <= MAX_DIFF and report["label_mismatches"] == 0
