"""The forecasting members behind ``training.ml.forecast``: ``fit(algorithm, panel, context)`` returns a
state (a dict of plain values, ndarrays and estimators, so a ``Forecaster`` saves with skops), and
``predict(state, panel, steps, future, context, stored=...)`` returns one array of ``steps`` values
per series. ``stored`` says the panel is the history the state was fitted on (or a cut of it), so
local models may reuse their parameters as they are.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from pandas.tseries.frequencies import to_offset
from sklearn.ensemble import HistGradientBoostingRegressor
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.statespace.kalman_filter import MEMORY_CONSERVE, MEMORY_NO_PREDICTED_MEAN
from statsmodels.tsa.statespace.sarimax import SARIMAX
from statsmodels.tsa.stattools import kpss

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
    anchor_ns: int = 0  # the grid's first time (the phase of Fourier terms)

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfTime()


def uses_known_ahead(algorithm: str) -> bool:
    return algorithm in GRADIENT_BOOSTING


# ----------------------------------------------------------------------------------------------
# time helpers


def step_times(last, frequency: str, steps: int) -> pd.DatetimeIndex:
    """The ``steps`` grid times after ``last``."""
    return _step_times(pd.Timestamp(last), frequency, steps)


@functools.lru_cache(maxsize=256)
def _step_times(last: pd.Timestamp, frequency: str, steps: int) -> pd.DatetimeIndex:
    # a DatetimeIndex is immutable: the series of a request (and the next requests) mostly end at one time
    return pd.date_range(last, periods=steps + 1, freq=frequency)[1:]


_MONTHS_PER_STEP = {"MS": 1, "ME": 1, "BMS": 1, "BME": 1, "QS": 3, "QE": 3, "BQS": 3, "BQE": 3, "YS": 12, "YE": 12}


def periods_since(anchor_ns: int, times, frequency: str) -> np.ndarray:
    """Steps of the frequency from the anchor to each time (the phase of Fourier terms)."""
    offset = to_offset(frequency)
    index = pd.DatetimeIndex(times)
    anchor = pd.Timestamp(anchor_ns)
    try:
        step = pd.Timedelta(offset).value
        return np.round((index.asi8 - anchor.value) / step).astype("int64")
    except ValueError:
        pass
    code, n = offset.rule_code.split("-")[0], max(int(offset.n), 1)
    if code == "W":
        return ((index.asi8 - anchor.value) // (7 * 86_400 * 10**9 * n)).astype("int64")
    if code in _MONTHS_PER_STEP:  # whole months between the two (numpy's month unit: no pandas fields)
        months = index.values.astype("datetime64[M]").astype("int64") - np.datetime64(anchor, "M").astype("int64")
        return (months // (_MONTHS_PER_STEP[code] * n)).astype("int64")
    grid = pd.date_range(min(anchor, index.min()), index.max(), freq=offset)
    return (np.searchsorted(grid.asi8, index.asi8) - np.searchsorted(grid.asi8, anchor.value)).astype("int64")


def mase_scale(history: np.ndarray, season_length: int) -> float:
    """MAE of the in-sample seasonal naive forecast (naive when the history is shorter than a season)."""
    m = season_length if len(history) > season_length else 1
    if len(history) <= m:
        return float("nan")
    return float(np.mean(np.abs(history[m:] - history[:-m])))


def series_scale(history: np.ndarray, season_length: int) -> float:
    """A positive scale of a series: its MASE scale (the naive one when the seasonal one is zero),
    else its spread; 1 for a constant series of zeros."""
    for m in (season_length, 1):
        value = mase_scale(history, m)
        if np.isfinite(value) and value > 1e-12:
            return value
    for value in (float(np.std(history)), float(np.mean(np.abs(history)))):
        if np.isfinite(value) and value > 1e-12:
            return value
    return 1.0


# ----------------------------------------------------------------------------------------------
# the interface


def fit(algorithm: str, panel: Panel, context: Context) -> dict:
    """A member fitted on every series of the panel (a state of plain values, for skops)."""
    if algorithm == "seasonal_naive":
        return {"algorithm": algorithm}
    if algorithm == "ets":
        return {"algorithm": algorithm, "series": {str(s.code): _fit_ets(s.y, s.times, context) for s in panel}}
    if algorithm == "arima":
        return {"algorithm": algorithm, "series": {str(s.code): _fit_arima(s, context) for s in panel}}
    if algorithm in GRADIENT_BOOSTING:
        return _fit_boosting(algorithm, panel, context)
    raise ValueError(f"Unknown forecasting algorithm {algorithm!r}.")


def predict(
    state: dict, panel: Panel, steps: int, future: list[np.ndarray], context: Context, *, stored: bool,
    regressor: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[np.ndarray]:  # fmt: skip
    """``steps`` forecasts after the end of each series (``future``: its known-ahead values per step).
    ``regressor``: what a boosting member predicts its feature rows with instead of its estimator
    (a verified ONNX twin: a recursive forecast calls it once per step)."""
    algorithm = state["algorithm"]
    if algorithm == "seasonal_naive":
        out = [seasonal_naive(s.y, context.season_length, steps) for s in panel]
    elif algorithm == "ets":
        out = [_predict_ets(state, s, steps, context, stored) for s in _timed(panel, context)]
    elif algorithm == "arima":
        out = [_predict_arima(state, s, steps, context, stored) for s in _timed(panel, context)]
    elif algorithm in GRADIENT_BOOSTING:
        out = _predict_boosting(state, panel, steps, future, context, regressor or state["model"].predict)
    else:
        raise ValueError(f"Unknown forecasting algorithm {algorithm!r}.")
    out = [
        np.where(np.isfinite(f), f, seasonal_naive(s.y, context.season_length, steps))
        for s, f in zip(panel, out, strict=True)
    ]
    return [np.maximum(f, 0.0) for f in out] if context.nonnegative else out


def _timed(panel: Panel, context: Context):
    """The series, the deadline checked before each (a local model may be refitted on it)."""
    for s in panel:
        context.check_time()
        yield s


def seasonal_naive(y: np.ndarray, season_length: int, steps: int) -> np.ndarray:
    """The value one season before each step (the last value when the history is shorter than a season)."""
    m = season_length if len(y) >= season_length else 1
    last_season = y[-m:]
    return np.array([last_season[h % m] for h in range(steps)], dtype="float64")


# ----------------------------------------------------------------------------------------------
# exponential smoothing: statsmodels ETSModel, the configuration chosen by AIC per series


def _local_window(context: Context) -> int:
    """How much of a long series the local models fit on (older points cost time, add little)."""
    m = context.season_length
    return max(4 * m, 300) if m <= 24 else 4 * m


# beyond this many series a local model tries a short list of configurations (its time is per series)
MANY_SERIES = 50


def ets_configurations(y: np.ndarray, m: int, *, few: bool = False) -> list[dict]:
    """Error add (and mul when positive), trend none/add/add damped, season none/add (and mul when
    positive) when there are two full seasons; ``few``: additive, damped or no trend only."""
    positive = bool(np.all(y > 0))
    errors = ["add", "mul"] if positive else ["add"]
    trends = [(None, False), ("add", False), ("add", True)]
    seasonals = [None]
    if m > 1 and len(y) >= 2 * m + 2:
        seasonals += ["add", "mul"] if positive and m <= 24 else ["add"]
    if m > 24:
        errors = ["add"]
    if few:
        errors, trends, seasonals = ["add"], [(None, False), ("add", True)], seasonals[:2]
    return [
        {"error": e, "trend": t, "damped_trend": d, "seasonal": s, "seasonal_periods": m if s else None}
        for e in errors
        for t, d in trends
        for s in seasonals
    ]


def _ets_model(y: np.ndarray, config: dict, initialization_method: str = "estimated"):
    return ETSModel(
        y,
        error=config["error"],
        trend=config["trend"],
        damped_trend=bool(config["damped_trend"]) if config["trend"] else False,
        seasonal=config["seasonal"],
        seasonal_periods=config["seasonal_periods"],
        initialization_method=initialization_method,
    )


def _fit_ets(y: np.ndarray, times: np.ndarray, context: Context) -> dict:
    """The ETS configuration of lowest AIC for one series, and its parameters."""
    start = max(0, len(y) - _local_window(context))
    y = y[start:]
    best = None
    with _quiet():
        for config in ets_configurations(y, context.season_length, few=context.n_series > MANY_SERIES):
            context.check_time()
            try:
                result = _ets_model(y, config).fit(disp=False, maxiter=200)
            except Exception:  # noqa: BLE001, S112 - a configuration that does not fit is not chosen
                continue
            if np.isfinite(result.aic) and (best is None or result.aic < best[0]):
                best = (result.aic, config, np.asarray(result.params, dtype="float64"))
    start_ns = int(times[start].astype("datetime64[ns]").astype("int64"))
    if best is None:  # e.g. a constant series: its seasonal naive forecast stands in
        return {"config": None, "params": np.zeros(0), "start": start_ns}
    return {"config": best[1], "params": best[2], "start": start_ns}


def _predict_ets(state: dict, series: Series, steps: int, context: Context, stored: bool) -> np.ndarray:
    fitted = state["series"].get(str(series.code))
    if fitted is not None and fitted["config"] is None:
        return seasonal_naive(series.y, context.season_length, steps)
    if fitted is not None and stored:
        keep = series.times.astype("datetime64[ns]").astype("int64") >= fitted["start"]
        if keep.sum() >= max(3, 2 * context.season_length):
            with _quiet():
                result = _ets_model(series.y[keep], fitted["config"]).smooth(fitted["params"])
                return np.asarray(result.forecast(steps), dtype="float64")
    if fitted is not None:
        forecast = _ets_on_new_history(fitted, series.y, steps)
        if forecast is not None:
            return forecast
    # a series never seen (or a history the known parameters cannot start on): fitted on what is given
    refit = _fit_ets(series.y, series.times, context)
    return _predict_ets({"series": {str(series.code): refit}}, series, steps, context, stored=True)


def _ets_on_new_history(fitted: dict, y: np.ndarray, steps: int) -> np.ndarray | None:
    """A known series' ETS forecast from a request's history: the fitted smoothing parameters, with
    starting states taken from the history itself (statsmodels' heuristic), as ARIMA filters a new
    history with its parameters. A fit per request would search every configuration (seconds).
    None when the history cannot start the model (under two seasons, or not positive for a
    multiplicative one): the caller fits on it."""
    try:
        with _quiet():
            model = _ets_model(y, fitted["config"], initialization_method="heuristic")
            # the fitted parameters are the smoothing ones, then the initial states: a heuristic
            # model takes the first ones, in that order (statsmodels' ETSModel._param_names)
            smoothing = fitted["params"][: len(model.param_names)]
            forecast = np.asarray(model.smooth(smoothing).forecast(steps), dtype="float64")
    except (ValueError, KeyError, np.linalg.LinAlgError):
        return None
    return forecast if np.all(np.isfinite(forecast)) else None


# ----------------------------------------------------------------------------------------------
# ARIMA: statsmodels SARIMAX, a few orders chosen by AIC per series


def _seasonal_arima(y: np.ndarray, m: int) -> bool:
    """A seasonal difference when the first differences correlate at the seasonal lag."""
    if m <= 1 or m > 24 or len(y) < 3 * m + 2:
        return False
    d = np.diff(y)
    d = d - d.mean()
    denominator = float(np.sum(d * d))
    return denominator > 0 and float(np.sum(d[m:] * d[:-m]) / denominator) > 0.2


def _difference_order(y: np.ndarray) -> int:
    if len(y) < 12:
        return 1
    with _quiet():
        try:
            p_value = kpss(y, regression="c", nlags="auto")[1]
        except Exception:  # noqa: BLE001 - no test result: difference (the safer choice)
            return 1
    return 1 if p_value < 0.05 else 0


def arima_configurations(y: np.ndarray, m: int) -> list[dict]:
    if _seasonal_arima(y, m):
        d = _difference_order(y[m:] - y[:-m])
        orders = [(0, d, 1), (1, d, 0), (1, d, 1)]
        seasonal = [(0, 1, 1, m), (1, 1, 0, m)]
        return [{"order": o, "seasonal_order": so, "trend": "n", "fourier": 0} for o in orders for so in seasonal]
    d = _difference_order(y)
    trend = "c" if d == 0 else "t"
    fourier = 3 if m > 24 and len(y) >= 2 * m else 0
    orders = [(1, d, 0), (0, d, 1), (1, d, 1), (2, d, 0), (2, d, 2)]
    return [{"order": o, "seasonal_order": (0, 0, 0, 0), "trend": trend, "fourier": fourier} for o in orders]


def _fourier(positions: np.ndarray, m: int, k: int) -> np.ndarray | None:
    if not k:
        return None
    angle = 2 * np.pi * np.outer(positions % m, np.arange(1, k + 1)) / m
    return np.hstack([np.sin(angle), np.cos(angle)])


def _sarimax(y: np.ndarray, config: dict, exog):
    return SARIMAX(
        y,
        exog=exog,
        order=tuple(config["order"]),
        seasonal_order=tuple(config["seasonal_order"]),
        trend=config["trend"],
    )


def _fit_arima(series: Series, context: Context) -> dict:
    start = max(0, len(series.y) - _local_window(context))
    y, times = series.y[start:], series.times[start:]
    positions = periods_since(context.anchor_ns, times, context.frequency)
    best = None
    with _quiet():
        for config in arima_configurations(y, context.season_length):
            context.check_time()
            exog = _fourier(positions, context.season_length, config["fourier"])
            try:
                result = _sarimax(y, config, exog).fit(disp=False, maxiter=50, method="lbfgs")
            except Exception:  # noqa: BLE001, S112 - an order that does not fit is not chosen
                continue
            if np.isfinite(result.aic) and (best is None or result.aic < best[0]):
                best = (result.aic, config, np.asarray(result.params, dtype="float64"))
    if best is None:  # e.g. a constant series: its seasonal naive forecast stands in
        return {"config": None, "params": np.zeros(0)}
    config = {**best[1], "order": list(best[1]["order"]), "seasonal_order": list(best[1]["seasonal_order"])}
    return {"config": config, "params": best[2]}


def _predict_arima(state: dict, series: Series, steps: int, context: Context, stored: bool) -> np.ndarray:
    fitted = state["series"].get(str(series.code))
    if fitted is None or len(series.y) < 3:
        fitted = _fit_arima(series, context)
    if fitted["config"] is None:
        return seasonal_naive(series.y, context.season_length, steps)
    # the parameters hold for any stretch of the series: the filter starts from the model's own prior
    y, times = series.y[-_local_window(context) :], series.times[-_local_window(context) :]
    config = fitted["config"]
    exog = None
    if config["fourier"]:
        positions = periods_since(context.anchor_ns, times, context.frequency)
        ahead = periods_since(context.anchor_ns, step_times(times[-1], context.frequency, steps), context.frequency)
        exog = _fourier(np.concatenate([positions, ahead]), context.season_length, config["fourier"])
    with _quiet():
        return _arima_forecast(y, config, fitted["params"], exog, steps)


# What a forecast reads of the filter's output: the predicted states, not their covariances (a kept
# model of 48 monthly points holds 0.2 MB instead of 1.1 MB).
_PREDICTED_STATES_ONLY = MEMORY_CONSERVE & ~MEMORY_NO_PREDICTED_MEAN


def _arima_forecast(y: np.ndarray, config: dict, params: np.ndarray, exog, steps: int) -> np.ndarray:
    """One Kalman filter over the history and the steps left empty: the predicted observation there
    is the forecast (what ``forecast`` gives, without building a second model). The filter is run
    on the state space itself: ``model.filter`` would also build a results object (parameter names,
    polynomials, copies of every array), twice the filter's own time on a 48-month history."""
    padded = np.concatenate([y, np.full(steps, np.nan)])
    # exog terms are bound when a model is built: such a model serves one request only
    shape = None if exog is not None else (*config["order"], *config["seasonal_order"], config["trend"], len(padded))
    model = _BUILT_ARIMA.take(shape)
    if model is None:
        model = _sarimax(padded, config, exog)
        model.ssm.set_conserve_memory(_PREDICTED_STATES_ONLY)
    else:
        _rebind(model, padded)
    model.update(params)
    ahead = slice(len(y), len(y) + steps)
    states = np.asarray(model.ssm._filter().predicted_state)[:, ahead]
    # SARIMAX's design is fixed; its observation intercept varies in time when it holds exog terms
    intercept = model.ssm["obs_intercept"][0]
    forecast = np.asarray(model.ssm["design"][0] @ states + (intercept[ahead] if intercept.ndim else intercept))
    if shape is not None:
        _BUILT_ARIMA.give(shape, model)
    return forecast


def _rebind(model: SARIMAX, endog: np.ndarray) -> None:
    """A built model on a new history of the same length. The state space keeps a copy of the
    history, and its missing-value mask, in objects made at the first filter: they are dropped so
    the next filter makes them again from this history."""
    model.ssm.bind(endog)
    model.ssm._representations.clear()
    model.ssm._statespaces.clear()


class _BuiltModels:
    """Built SARIMAX models kept for the next history of the same configuration and length. Building
    one (its specification's checks, its polynomials) takes longer than filtering a short history
    with it (a forecast from 48 months: 1.15 ms with a model built for it, 0.47 ms with a kept one,
    here), and a served model is asked for the same shape of history request after request. A
    model serves one thread at a time: it is taken out and given back. A model holds its filter's
    output's predicted states (hundreds of KB), so a few shapes are kept, the most recently used,
    two models each (a replica scores on as many threads as it has cores)."""

    def __init__(self, shapes: int = 16, per_shape: int = 2):
        self._shapes, self._per_shape = shapes, per_shape
        self._pools: collections.OrderedDict[tuple, list] = collections.OrderedDict()
        self._lock = threading.Lock()

    def take(self, shape: tuple | None):
        with self._lock:
            pool = self._pools.get(shape)
            return pool.pop() if pool else None

    def give(self, shape: tuple, model) -> None:
        with self._lock:
            pool = self._pools.setdefault(shape, [])
            self._pools.move_to_end(shape)
            if len(pool) < self._per_shape:
                pool.append(model)
            while len(self._pools) > self._shapes:
                self._pools.popitem(last=False)


_BUILT_ARIMA = _BuiltModels()


# ----------------------------------------------------------------------------------------------
# gradient boosting on lag features, across series (recursive: one model predicts the next step)

GRADIENT_BOOSTING = ("lightgbm_lags", "hgb_lags")
FOURIER_TERMS = 3
MAX_TRAINING_ROWS = 200_000
# fewer rows (one short yearly or quarterly series) and the trees fit the backtest's noise
MIN_BOOSTING_ROWS = 120
# How the boosted members forecast several steps. Direct (one model, the step a feature, the target
# the change from the origin) for LightGBM: on the public suite it beat recursive on 8 of the 12
# series both could fit (sunspots 1.26 -> 0.46 MASE, US births 2.90 -> 1.12: no error feeds
# back). For HistGradientBoosting the two tied (6 of 12): recursive, one row per time (cheaper),
# which also gives the ensemble a member of the other kind.
BOOSTING_STRATEGY = {"lightgbm_lags": "direct", "hgb_lags": "recursive"}
DIRECT_MAX_ROWS = 50_000  # (origin, step) rows: origins are thinned beyond this


def boosting_features(m: int, shortest: int, n_known: int) -> dict:
    """Which lags and windows (no lag longer than half the shortest training series)."""
    limit = max(2, shortest // 2)
    lags = sorted({k for k in [*range(2, max(min(m, 24), 4) + 1), m, 2 * m] if 2 <= k <= limit})
    windows = sorted({w for w in (3, m) if 2 <= w <= limit})
    return {"lags": lags, "windows": windows, "fourier": FOURIER_TERMS if m > 1 else 0, "n_known": n_known}


def _feature_matrix(y, positions, times, known, code, scale, features, context, calendar=None) -> np.ndarray:
    """Rows of features for the targets at ``positions`` of ``y`` (which holds the past of each);
    ``calendar``: the rows' ``_calendar_columns`` when computed beforehand."""
    pad = max([*features["lags"], *features["windows"], 1])
    padded = np.concatenate([np.full(pad, y[0]), y])
    at = np.asarray(positions) + pad
    base = padded[at - 1]
    # every lag at once (the same arithmetic as one column at a time)
    lags = np.asarray(features["lags"], dtype="int64")
    columns = list((padded[at[None, :] - lags[:, None]] - base) / scale)
    if features["windows"]:
        # window sums from cumulative sums (memory per row, not per row and window); centred first
        level = padded.mean()
        centred = padded - level
        sums = np.concatenate([[0.0], np.cumsum(centred)])
        squares = np.concatenate([[0.0], np.cumsum(centred**2)])
    for w in features["windows"]:
        mean = (sums[at] - sums[at - w]) / w
        variance = np.maximum((squares[at] - squares[at - w]) / w - mean**2, 0.0)
        columns.append((mean + level - base) / scale)
        columns.append(np.sqrt(variance) / scale)
    columns += list((_calendar_columns(times, features, context) if calendar is None else calendar).T)
    columns.append(np.full(len(at), float(code) if code >= 0 else np.nan))
    if features["n_known"]:
        columns += list(np.asarray(known, dtype="float64").reshape(len(at), -1).T)
    return np.column_stack([np.asarray(c, dtype="float64") for c in columns])


def _calendar_columns(times, features, context) -> np.ndarray:
    """Calendar parts and Fourier terms of ``times`` (a row per time): they do not depend on the
    target, so a recursive forecast computes them once for every step."""
    return _calendar(times, features["fourier"], context.anchor_ns, context.frequency, context.season_length)


def _calendar(times, fourier: int, anchor_ns: int, frequency: str, season_length: int) -> np.ndarray:
    index = pd.DatetimeIndex(times)
    columns = [
        index.month.to_numpy(),
        index.day_of_week.to_numpy(),
        index.day.to_numpy(),
        index.hour.to_numpy(),
        [t.isocalendar()[1] for t in index],  # (pandas' isocalendar() builds a frame: 2 ms a call)
    ]
    terms = _fourier(periods_since(anchor_ns, index, frequency), season_length, fourier)
    if terms is not None:
        columns += list(terms.T)
    return np.column_stack([np.asarray(c, dtype="float64") for c in columns])


@functools.lru_cache(maxsize=256)
def _step_calendar(last, frequency: str, steps: int, fourier: int, anchor_ns: int, season_length: int) -> np.ndarray:
    """``_calendar`` of the ``steps`` times after ``last`` (read-only: shared by series and requests)."""
    calendar = _calendar(step_times(last, frequency, steps), fourier, anchor_ns, frequency, season_length)
    calendar.flags.writeable = False
    return calendar


def _estimator(algorithm: str, context: Context, categorical: int | None):
    if algorithm == "lightgbm_lags":
        return LGBMRegressor(
            n_estimators=300,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=5,
            subsample=0.9,
            subsample_freq=1,
            colsample_bytree=0.9,
            random_state=context.seed,
            n_jobs=1,
            verbose=-1,
        )
    mask = None
    if categorical is not None:
        mask = np.zeros(categorical + 1, dtype=bool)
        mask[categorical] = True
    return HistGradientBoostingRegressor(
        max_iter=300,
        learning_rate=0.05,
        min_samples_leaf=5,
        early_stopping=False,
        categorical_features=mask,
        random_state=context.seed,
    )


def _log_scale(panel: Panel) -> bool:
    """Positive series are modelled in logs: their changes become ratios, which a tree extrapolates
    to a level it has not seen (growth, seasons that widen with the level)."""
    return all(len(s.y) and bool((s.y > 0).all()) for s in panel)


def _working(y: np.ndarray, log: bool) -> np.ndarray:
    return np.log(np.maximum(y, 1e-9)) if log else y


def _fit_boosting(algorithm: str, panel: Panel, context: Context) -> dict:
    log, strategy = _log_scale(panel), BOOSTING_STRATEGY[algorithm]
    features = boosting_features(context.season_length, min(len(s.y) for s in panel), context.n_known)
    rows, targets = [], []
    steps = context.gap + context.horizon
    per_series = max(MAX_TRAINING_ROWS // len(panel), 1)  # every series keeps its latest rows
    for s in panel:
        context.check_time()
        y = _working(s.y, log)
        scale = series_scale(y, context.season_length)
        if strategy == "recursive":
            positions = np.arange(1, len(y))[-per_series:]
            rows.append(
                _feature_matrix(y, positions, s.times[positions], s.known[positions], s.code, scale, features, context)
            )
            targets.append((y[positions] - y[positions - 1]) / scale)
            continue
        # direct: one row per (origin, step), the step a feature, the target the change from the origin
        every = max(1, -(-len(y) * steps // max(DIRECT_MAX_ROWS // len(panel), 1)))
        for h in range(1, steps + 1):
            origins = np.arange(1, len(y) - h + 1, every)
            at = origins + h - 1
            matrix = _feature_matrix(y, origins, s.times[at], s.known[at], s.code, scale, features, context)
            rows.append(np.column_stack([matrix, np.full(len(origins), float(h))]))
            targets.append((y[at] - y[origins - 1]) / scale)
    X, y = np.vstack(rows)[-MAX_TRAINING_ROWS:], np.concatenate(targets)[-MAX_TRAINING_ROWS:]
    times_seen = sum(len(s.y) - 1 for s in panel)
    if times_seen < MIN_BOOSTING_ROWS:
        raise ValueError(
            f"boosting on lag features needs at least {MIN_BOOSTING_ROWS} training rows over the series; "
            f"a backtest window has {times_seen}"
        )
    code_column = X.shape[1] - 1 - context.n_known - (strategy == "direct")
    # a category per series (HistGradientBoosting takes at most 255 of them: beyond, a number)
    categorical = code_column if context.n_series <= 250 else None
    estimator = _estimator(algorithm, context, categorical)
    if algorithm == "hgb_lags" and categorical is not None:
        estimator.set_params(categorical_features=[i == code_column for i in range(X.shape[1])])
    with _quiet():
        if algorithm == "lightgbm_lags":
            estimator.fit(X, y, categorical_feature=[code_column] if categorical is not None else "auto")
        else:
            estimator.fit(X, y)
    context.check_time()
    return {"algorithm": algorithm, "features": features, "model": estimator, "log": log, "strategy": strategy}


def boosting_estimator(state: dict):
    """A boosting member's fitted estimator (it predicts the rows ``_feature_matrix`` builds), else None."""
    return state.get("model") if state["algorithm"] in GRADIENT_BOOSTING else None


def _predict_boosting(
    state: dict, panel: Panel, steps: int, future: list[np.ndarray], context: Context, regress
) -> list[np.ndarray]:
    features, log = state["features"], bool(state.get("log"))
    extended = [np.concatenate([_working(s.y, log), np.zeros(steps)]) for s in panel]
    scales = [series_scale(y[: len(s.y)], context.season_length) for s, y in zip(panel, extended, strict=True)]
    # series (and requests) that end at the same time share their steps' calendar
    calendars = [
        _step_calendar(s.times[-1], context.frequency, steps, features["fourier"], context.anchor_ns,
                       context.season_length)
        for s in panel
    ]  # fmt: skip
    if state.get("strategy") == "direct":  # every series' steps in one call
        matrices = [
            _feature_matrix(
                y[: len(s.y)], np.full(steps, len(s.y)), None, future[i] if context.n_known else None,
                s.code, scales[i], features, context, calendar=calendars[i],
            )
            for i, (s, y) in enumerate(zip(panel, extended, strict=True))
        ]  # fmt: skip
        step_numbers = np.arange(1, steps + 1, dtype=float)
        with _quiet():
            changes = regress(np.vstack([np.column_stack([m, step_numbers]) for m in matrices])).reshape(len(panel), -1)
        out = []
        for i, s in enumerate(panel):
            values = extended[i][len(s.y) - 1] + changes[i] * scales[i]
            out.append(np.exp(values) if log else values)
        return out
    with _quiet():
        for step in range(steps):
            rows = np.vstack(
                [
                    _feature_matrix(
                        y[: len(s.y) + step + 1],
                        np.array([len(s.y) + step]),
                        None,  # the calendar is given
                        future[i][step : step + 1] if context.n_known else None,
                        s.code,
                        scales[i],
                        features,
                        context,
                        calendar=calendars[i][step : step + 1],
                    )
                    for i, (s, y) in enumerate(zip(panel, extended, strict=True))
                ]
            )
            change = regress(rows)
            for i, s in enumerate(panel):
                value = extended[i][len(s.y) + step - 1] + change[i] * scales[i]
                extended[i][len(s.y) + step] = max(value, 0.0) if context.nonnegative and not log else value
    forecasts = [y[len(s.y) :] for s, y in zip(panel, extended, strict=True)]
    return [np.exp(f) for f in forecasts] if log else forecasts


# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """statsmodels and LightGBM warn about convergence and feature names: the backtest judges them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            yield
