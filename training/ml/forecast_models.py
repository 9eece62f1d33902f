"""The forecasting members behind ``training.ml.forecast``: ``fit(algorithm, panel, context)`` returns a
state (a dict of plain values, ndarrays and estimators, so a ``Forecaster`` saves with skops), and
``predict(state, panel, steps, future, context, stored=...)`` returns one array of ``steps`` values
per series. ``stored`` says the panel is the history the state was fitted on (or a cut of it), so
local models may reuse their parameters as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

FORECAST_ALGORITHMS = ("seasonal_naive", "ets", "arima", "lightgbm_lags", "hgb_lags")
ALGORITHM_LABELS = {
    "seasonal_naive": "Seasonal naive",
    "ets": "Exponential smoothing (ETS)",
    "arima": "ARIMA",
    "lightgbm_lags": "LightGBM on lag features",
    "hgb_lags": "Histogram gradient boosting on lag features",
    "ensemble": "Ensemble",
}


class OutOfTime(Exception):
    """The deadline passed while a member was fitted."""


@dataclass
class Series:
    key: str  # the series ids joined (training.ml.forecast.SERIES_KEY_SEPARATOR); "" for one series
    code: int  # the index of the series in the training data (-1: a series never seen)
    times: np.ndarray  # datetime64[ns], regular
    y: np.ndarray  # float64, no NaN
    known: np.ndarray  # (len, n_known) float64: the encoded known-ahead columns


Panel = list[Series]


@dataclass
class Context:
    season_length: int
    frequency: str
    horizon: int
    gap: int
    seed: int
    n_series: int
    n_known: int
    nonnegative: bool
    deadline: float | None

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfTime()


def uses_known_ahead(algorithm: str) -> bool:
    return algorithm in ("lightgbm_lags", "hgb_lags")


def fit(algorithm: str, panel: Panel, context: Context) -> dict:
    if algorithm == "seasonal_naive":
        return {"algorithm": algorithm}
    raise NotImplementedError(f"{algorithm} is not available yet")


def predict(
    state: dict, panel: Panel, steps: int, future: list[np.ndarray], context: Context, *, stored: bool
) -> list[np.ndarray]:
    algorithm = state["algorithm"]
    if algorithm == "seasonal_naive":
        return [seasonal_naive(s.y, context.season_length, steps) for s in panel]
    raise NotImplementedError(f"{algorithm} is not available yet")


def seasonal_naive(y: np.ndarray, season_length: int, steps: int) -> np.ndarray:
    """The value one season before each step (the last value when the history is shorter than a season)."""
    m = season_length if len(y) >= season_length else 1
    last_season = y[-m:]
    return np.array([last_season[h % m] for h in range(steps)], dtype="float64")
