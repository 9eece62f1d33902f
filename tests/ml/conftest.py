"""Small, fast data sets for the pure ML engine tests (no database, no Django models)."""

import numpy as np
import pandas as pd
import pytest

from training.ml.search import AutoMLSpec, automl_setup
from training.ml.trial import TrialSpec


def mixed_frame(n: int = 240, seed: int = 0, classes: int = 2) -> tuple[pd.DataFrame, pd.Series]:
    """Every column kind the featurizer handles, with missing values, and a learnable target."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "amount": rng.normal(size=n),
            "visits": rng.integers(0, 9, n).astype(float),
            "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], n)),
            "city": rng.choice([f"city{i}" for i in range(30)], n).astype(object),
            "signed_up": pd.date_range("2021-01-01", periods=n, freq="19h"),
            "note": [" ".join(rng.choice(["late", "paid", "call", "email", "happy", "angry"], 5)) for _ in range(n)],
            "active": rng.choice([True, False], n),
        }
    )
    X.loc[::9, "amount"] = np.nan
    X.loc[::13, "plan"] = np.nan
    signal = X["amount"].fillna(0) + (X["plan"] == "pro") - 0.5 * (X["visits"] > 5) + rng.normal(0, 0.7, n)
    if classes == 2:
        y = np.where(signal > 0.3, "yes", "no")
    else:
        y = np.select([signal < -0.2, signal < 0.7], ["low", "mid"], "high")
    return X, pd.Series(y, name="target")


@pytest.fixture
def binary_data():
    return mixed_frame(240, seed=0, classes=2)


@pytest.fixture
def multiclass_data():
    return mixed_frame(240, seed=1, classes=3)


def make_trial(
    setup: dict,
    algorithm: str,
    params: dict,
    *,
    trial_id: int = 0,
    metric: str = "auc_weighted",
    time_limit_s: float | None = None,
) -> TrialSpec:
    return TrialSpec(
        trial_id=trial_id,
        algorithm=algorithm,
        params=params,
        origin="portfolio",
        plan=setup["plan"],
        validation=setup["validation"],
        primary_metric=metric,
        classes=setup["classes"],
        class_weight=setup["class_weight"],
        seed=0,
        time_limit_s=time_limit_s,
    )


def setup_for(X, y, **spec) -> dict:
    return automl_setup(AutoMLSpec.from_dict(spec), X, y, seed=0)
