"""Time-series forecasting: settings, preparation with guardrails, the rolling-origin search and
the served ``Forecaster`` (pure: pandas, numpy, scikit-learn, statsmodels, LightGBM; no Django).

``prepare`` turns a long table (time, series ids, target, known-ahead columns) into regular series
and reports what it fixed; ``search`` backtests every algorithm on rolling origins within a deadline
and returns the leaderboard, the chart data and a ``Forecaster`` refit on the whole history. The
members themselves (seasonal naive, ETS, ARIMA, boosting on lag features) live in
``forecast_models.py``; this module only knows their ``fit``/``predict`` interface.

A ``Forecaster`` is saved with skops: it holds dicts, lists, strings, ndarrays and scikit-learn or
LightGBM estimators only. Statsmodels members keep their configuration and fitted parameters and
re-run the model with those parameters at forecast time (so no statsmodels type is in the file).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from scipy.stats import norm

from modelformat.signature import _label as id_label

from . import forecast_models as models
from .forecast_models import OutOfTime, Panel, Series, mase_scale, series_scale, step_times
from .metrics import regression_score
from .tasks import FORECASTING_PRIMARY_METRICS

FORECAST_ALGORITHMS = models.FORECAST_ALGORITHMS
ALGORITHM_LABELS = models.ALGORITHM_LABELS
# every forecasting metric is an error: smaller is better
FORECAST_METRICS = FORECASTING_PRIMARY_METRICS
MAX_HORIZON = 1000
MAX_GAP = 1000
MAX_SERIES_COLUMNS = 3
MAX_BACKTEST_WINDOWS = 10
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 30, 86_400
MAX_CHART_SERIES = 20
MANY_SERIES_FIRST_GLOBAL = 10  # from this many series, boosting is backtested before ETS and ARIMA
# more than this share of timestamps off the inferred grid: the data has no frequency of its own
MAX_OFF_GRID_SHARE = 0.2
GUARDRAILS = ("frequency", "missing_timestamps", "duplicate_timestamps", "history_length", "missing_target")
SERIES_KEY_SEPARATOR = "\x1f"
# A regular grid is built in memory: a frequency far finer than the data (minutes over centuries)
# would ask for gigabytes. Its length is checked first: at most this many points per data row ...
GRID_POINTS_PER_ROW = 20
MIN_GRID_POINTS = 10_000  # (a short history with a few gaps is always fine)
MAX_GRID_POINTS = 5_000_000  # ... and never more than this


class ForecastSettingsError(ValueError):
    """A setting (or the data it names) that cannot be used; ``field`` names the setting."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class ForecastInputError(ValueError):
    """A forecast request that cannot be answered; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class ForecastTimeout(ValueError, TimeoutError):
    """A forecast request whose local models could not be refitted before its deadline (a
    TimeoutError too, so serving catches it without importing the engine)."""

    def __init__(self, message: str, field: str = "history"):
        super().__init__(message)
        self.field = field
        self.message = message


# ----------------------------------------------------------------------------------------------
# settings


def _as_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ForecastSettingsError(name, f"{name} must be a whole number, not {value!r}.")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise ForecastSettingsError(name, f"{name} must be a whole number, not {value!r}.")
    if not low <= int(value) <= high:
        raise ForecastSettingsError(name, f"{name} must be between {low} and {high}, not {value}.")
    return int(value)


def _as_names(value, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ForecastSettingsError(name, f"{name} must be a list of column names.")
    if len(set(value)) != len(value):
        raise ForecastSettingsError(name, f"{name} names a column twice.")
    return list(value)


def normalize_frequency(alias) -> str:
    """A pandas offset alias in its canonical spelling; raises ForecastSettingsError("frequency")."""
    if not isinstance(alias, str) or not alias.strip():
        raise ForecastSettingsError(
            "frequency", f"frequency must be a pandas offset alias such as MS, W-MON or D, not {alias!r}."
        )
    try:
        with warnings.catch_warnings():  # deprecated spellings ("w-mon", "H") still name a frequency
            warnings.simplefilter("ignore")
            offset = to_offset(alias.strip())
    except (ValueError, TypeError):
        raise ForecastSettingsError(
            "frequency", f"Unknown frequency {alias!r}: use a pandas offset alias such as D, W-MON, MS, QS, YS or h."
        ) from None
    try:
        shortest_step_ns(offset.freqstr)
    except (OverflowError, pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta):
        raise ForecastSettingsError(
            "frequency", f"The frequency {alias!r} has steps longer than the dates pandas can hold (1677 to 2262)."
        ) from None
    freq = offset.freqstr
    # the common spellings of the default anchors
    return {"QS-JAN": "QS", "YS-JAN": "YS", "QE-DEC": "QE", "YE-DEC": "YE"}.get(freq, freq)


def season_length_for(frequency: str) -> int:
    """The usual seasonal period of a frequency: MS 12, QS 4, YS 1, W 52, D 7, h 24, 30min 48, else 1."""
    offset = to_offset(frequency)
    base, n = offset.rule_code.split("-")[0], max(int(offset.n), 1)
    per_cycle = {"MS": 12, "ME": 12, "BMS": 12, "BME": 12, "SMS": 24, "SME": 24, "QS": 4, "QE": 4, "BQS": 4,
                 "BQE": 4, "W": 52, "D": 7, "B": 5, "h": 24, "bh": 8, "min": 1440}.get(base)  # fmt: skip
    if per_cycle is None or per_cycle % n:
        return 1
    season = per_cycle // n
    return season if season <= 1000 else 1


@dataclass
class ForecastSettings:
    time_column: str
    target_column: str
    horizon: int
    series_columns: list[str] = field(default_factory=list)
    frequency: str | None = None
    known_ahead: list[str] = field(default_factory=list)
    gap: int = 0
    season_length: int | None = None
    backtest_windows: int = 3
    primary_metric: str = "normalized_rmse"
    algorithms: list[str] | None = None
    timeout_s: float = 600

    FIELDS = (
        "time_column", "target_column", "horizon", "series_columns", "frequency", "known_ahead", "gap",
        "season_length", "backtest_windows", "primary_metric", "algorithms", "timeout_s",
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> ForecastSettings:
        """Settings from a spec's dict (other keys are ignored), checked."""
        if not isinstance(data, dict):
            raise ForecastSettingsError("time_column", "The forecasting settings must be an object.")
        for required in ("time_column", "target_column", "horizon"):
            if data.get(required) in (None, ""):
                raise ForecastSettingsError(required, f"{required} is required for a forecast.")
        kwargs = {name: data[name] for name in cls.FIELDS if name in data and data[name] is not None}
        for name in ("series_columns", "known_ahead"):
            kwargs[name] = _as_names(kwargs.get(name), name)
        settings = cls(**kwargs)
        settings.check()
        return settings

    def to_dict(self) -> dict:
        return {name: (list(v) if isinstance(v := getattr(self, name), list) else v) for name in self.FIELDS}

    def check(self) -> ForecastSettings:
        """Types and ranges (what needs the data is ``prepare``'s); normalizes in place."""
        for name in ("time_column", "target_column"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ForecastSettingsError(name, f"{name} must be a column name.")
        self.horizon = _as_int(self.horizon, "horizon", 1, MAX_HORIZON)
        self.gap = _as_int(self.gap, "gap", 0, MAX_GAP)
        self.backtest_windows = _as_int(self.backtest_windows, "backtest_windows", 1, MAX_BACKTEST_WINDOWS)
        if self.season_length is not None:
            self.season_length = _as_int(self.season_length, "season_length", 1, 1000)
        self.series_columns = _as_names(self.series_columns, "series_columns")
        self.known_ahead = _as_names(self.known_ahead, "known_ahead")
        if len(self.series_columns) > MAX_SERIES_COLUMNS:
            raise ForecastSettingsError("series_columns", f"At most {MAX_SERIES_COLUMNS} series id columns.")
        special = {self.time_column, self.target_column}
        if special & set(self.series_columns):
            raise ForecastSettingsError("series_columns", "A series id column cannot be the time column or the target.")
        if (special | set(self.series_columns)) & set(self.known_ahead):
            raise ForecastSettingsError(
                "known_ahead", "A known-ahead column cannot be the time column, the target or a series id column."
            )
        if self.frequency is not None:
            self.frequency = normalize_frequency(self.frequency)
        if self.primary_metric not in FORECAST_METRICS:
            raise ForecastSettingsError(
                "primary_metric",
                f"primary_metric must be one of {', '.join(FORECAST_METRICS)}, not {self.primary_metric!r}.",
            )
        if self.algorithms is not None:
            if (
                isinstance(self.algorithms, str)
                or not isinstance(self.algorithms, (list, tuple))
                or not self.algorithms
            ):
                raise ForecastSettingsError("algorithms", "algorithms must be a non-empty list (or left out for all).")
            unknown = [a for a in self.algorithms if a not in FORECAST_ALGORITHMS]
            if unknown:
                raise ForecastSettingsError(
                    "algorithms", f"Unknown algorithm {unknown[0]!r}: choose from {', '.join(FORECAST_ALGORITHMS)}."
                )
            self.algorithms = list(dict.fromkeys(self.algorithms))
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)):
            raise ForecastSettingsError("timeout_s", f"timeout_s must be a number of seconds, not {self.timeout_s!r}.")
        if not MIN_TIMEOUT_S <= self.timeout_s <= MAX_TIMEOUT_S:
            raise ForecastSettingsError("timeout_s", f"timeout_s must be between {MIN_TIMEOUT_S} and {MAX_TIMEOUT_S}.")
        return self


# ----------------------------------------------------------------------------------------------
# parsing and regular grids (shared by ``prepare`` and ``Forecaster.forecast``)


def parse_times(
    values: pd.Series, column: str, error=ForecastSettingsError, field_name: str | None = None
) -> pd.Series:
    """Timestamps (naive, ns) from a column; NaT where the cell is empty. Raises ``error`` naming the
    first value that is not a date (numbers are refused: a time column holds dates). A time with a
    zone becomes its own wall time (a day in Paris stays that day, whatever its UTC offset)."""
    field_name = field_name or column
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            first = values.dropna()
            shown = repr(first.iloc[0]) if len(first) else "numbers"
            raise error(field_name, f"The time column {column!r} holds numbers ({shown}), not dates.")
        text = values.astype("string").str.strip()
        text = text.mask(text == "")
        parsed = _to_datetime(text)
        bad = parsed.isna() & text.notna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise error(
                field_name,
                f"The time column {column!r} has a value that does not parse as a date: "
                f"{text.iloc[position]!r} (row {position + 1}).",
            )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _to_datetime(text: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(text, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            parsed = pd.Series(pd.NaT, index=text.index)
        if (parsed.isna() & text.notna()).any():  # a format inferred from the first value: try each alone
            try:
                parsed = pd.to_datetime(text, errors="coerce", format="mixed")
            except (ValueError, TypeError, OverflowError):
                pass
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(None)
        if parsed.dtype == object:
            parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
        unparsed = np.flatnonzero((parsed.isna() & text.notna()).to_numpy())
        if len(unparsed):
            # offsets that change (summer time) parse one by one, each to its own wall time (given
            # up after 100 failures in a row: that column holds no dates, the first bad one is named)
            parsed = parsed.astype("datetime64[ns]").copy()
            failures = 0
            for position in unparsed:
                stamp = _wall_time(text.iloc[position])
                failures = failures + 1 if stamp is pd.NaT else 0
                if failures > 100:
                    break
                parsed.iloc[position] = stamp
    return parsed


def _wall_time(value) -> pd.Timestamp:
    """One text as a naive timestamp: its own local time when it has a zone; NaT when it is no date."""
    if value is None or value is pd.NA:
        return pd.NaT
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    return stamp.tz_localize(None) if stamp is not pd.NaT and stamp.tzinfo is not None else stamp


def parse_target(
    values: pd.Series, column: str, error=ForecastSettingsError, field_name: str | None = None
) -> pd.Series:
    """The target as float64 (NaN where empty); raises ``error`` on a value that is not a number."""
    field_name = field_name or column
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return _finite(values.astype("float64"))
    text = values.astype("string").str.strip()
    text = text.mask(text == "")
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() & text.notna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise error(
            field_name, f"The target {column!r} must be numeric; it has {text.iloc[position]!r} (row {position + 1})."
        )
    return _finite(numbers.astype("float64"))


def _finite(numbers: pd.Series) -> pd.Series:
    """Infinite targets are missing values (counted and interpolated like the empty ones)."""
    values = numbers.to_numpy(dtype="float64", copy=True)  # (numpy: Series.where costs a request ~0.1 ms)
    values[~np.isfinite(values)] = np.nan
    return pd.Series(values, index=numbers.index, name=numbers.name)


_TRUE, _FALSE = {"yes", "y", "true", "t", "1", "on"}, {"no", "n", "false", "f", "0", "off"}


def known_ahead_encoding(values: pd.Series) -> dict:
    """How a known-ahead column becomes a number: as is, yes/no as 1/0, or a category's code."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return {"kind": "number"}
    text = values.dropna().astype(str).str.strip().str.lower()
    text = text[text != ""]
    if len(text) and pd.to_numeric(text, errors="coerce").notna().all():
        return {"kind": "number"}
    if len(text) and text.isin(_TRUE | _FALSE).all():
        return {"kind": "yes_no"}
    return {"kind": "category", "categories": sorted(map(str, values.dropna().astype(str).str.strip().unique()))[:1000]}


def encode_known_ahead(values: pd.Series, encoding: dict) -> np.ndarray:
    if encoding["kind"] == "number":
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return values.astype("float64").to_numpy()
        return pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype("float64").to_numpy()
    if encoding["kind"] == "yes_no" and (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        return values.astype("float64").to_numpy()  # already 1/0
    text = values.astype("string").str.strip()
    if encoding["kind"] == "yes_no":
        lower = text.str.lower()
        return np.where(lower.isin(_TRUE), 1.0, np.where(lower.isin(_FALSE), 0.0, np.nan))
    codes = {c: float(i) for i, c in enumerate(encoding["categories"])}
    return np.array([codes.get(v, np.nan) if isinstance(v, str) else np.nan for v in text.tolist()], dtype="float64")


def series_id_text(value) -> str:
    """One series id as the text of its key: the signature's label rule (1, 1.0 and "1" are one
    series), trimmed; a missing id is ""."""
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return id_label(value).strip()


def _series_key_text(values) -> str:
    return SERIES_KEY_SEPARATOR.join(values)


def series_key_columns(
    frame: pd.DataFrame, columns: list[str], error=ForecastSettingsError, field_name: str = "series_columns"
) -> pd.Series:
    """Each row's series key as one string (``series_id_text`` of each id, joined); raises ``error``
    when an id holds the key separator (it would split into other ids)."""
    if not columns:
        return pd.Series("", index=frame.index, dtype=object)
    return pd.Series(series_keys(frame, columns, error, field_name), index=frame.index, dtype=object)


def series_keys(
    table, columns: list[str], error=ForecastSettingsError, field_name: str = "series_columns"
) -> np.ndarray:
    """``series_key_columns`` as an object array, from any table whose ``table[column]`` gives a
    column's values: a DataFrame, or a request's columns as the signature cast them (no Series
    built for text ids, the common case). ``columns`` is not empty."""
    key = _series_key_part(table[columns[0]], columns[0], error, field_name)
    for column in columns[1:]:
        key = key + SERIES_KEY_SEPARATOR + _series_key_part(table[column], column, error, field_name)
    return key


def _series_key_part(values, column: str, error, field_name: str) -> np.ndarray:
    """One id column's part of the key: each value's ``series_id_text``."""
    codes, uniques = pd.factorize(values)
    if all(isinstance(u, str) for u in uniques):  # text ids: one label per distinct text
        labels = [series_id_text(u) for u in uniques]
        if not any(SERIES_KEY_SEPARATOR in label for label in labels):
            return np.array([*labels, ""], dtype=object)[codes]  # -1 (missing): ""
    values = pd.Series(values)
    if pd.api.types.is_string_dtype(values) or values.dtype == object:
        # text (to name the first row at fault) and mixed values, each with its own label
        # (factorize would merge True with 1)
        text = values.map(series_id_text, na_action=None)
    else:  # numbers, booleans, dates: one label per distinct value
        labels = {v: series_id_text(v) for v in pd.unique(values)}
        text = values.map(lambda v, labels=labels: labels.get(v, series_id_text(v)))
    text = text.astype(object)
    bad = text.str.contains(SERIES_KEY_SEPARATOR, regex=False)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise error(
            field_name,
            f"The series id column {column!r} has a value with the control character U+001F "
            f"(row {position + 1}); remove it from the ids.",
        )
    return text.to_numpy()


def _grid_offset(frequency: str):
    return to_offset(frequency)


def _anchor(first: pd.Timestamp, frequency: str) -> pd.Timestamp:
    """A grid point at or before the first time (anchored offsets roll back; fixed steps start there)."""
    offset = _grid_offset(frequency)
    return offset.rollback(first) if not offset.is_on_offset(first) else first


@functools.lru_cache(maxsize=64)
def shortest_step_ns(frequency: str) -> int:
    """The shortest step of the frequency in nanoseconds (a month: 28 days; business days: 1 day)."""
    offset = to_offset(frequency)
    try:
        return max(int(pd.Timedelta(offset).value), 1)
    except ValueError:  # calendar offsets: measure a year of them
        sample = pd.date_range("2001-01-01", periods=13, freq=offset).as_unit("ns").asi8
        return max(int(np.diff(sample).min()), 1)


def grid_points(start, end, frequency: str) -> np.ndarray:
    """An upper bound of the grid points from each start to each end (without building the grid)."""
    start, end = np.asarray(start, dtype="datetime64[ns]"), np.asarray(end, dtype="datetime64[ns]")
    span = (end.astype("int64") - start.astype("int64")).astype("float64")
    return np.maximum(span, 0) / shortest_step_ns(frequency) + 2


def check_grid_size(frame: pd.DataFrame, frequency: str, anchor, error, field_name: str) -> None:
    """Refuse a frequency whose regular grid over the data (from the anchor, and per series) would
    be far larger than the data itself; ``frame`` has "key" and "time"."""
    spans = frame.groupby("key")["time"].agg(["min", "max"])
    firsts, lasts = spans["min"].to_numpy(), spans["max"].to_numpy()
    _check_grid_points(len(frame), firsts, lasts, frequency, anchor, error, field_name)


def _check_grid_points(rows: int, firsts: np.ndarray, lasts: np.ndarray, frequency: str, anchor, error,
                       field_name: str) -> None:  # fmt: skip
    """``check_grid_size`` from each series' first and last time."""
    budget = min(MAX_GRID_POINTS, max(GRID_POINTS_PER_ROW * rows, MIN_GRID_POINTS))
    first, last = pd.Timestamp(firsts.min()), pd.Timestamp(lasts.max())
    start = min(first, pd.Timestamp(anchor)) if anchor is not None else first
    whole = float(grid_points(start, last, frequency))
    per_series = float(grid_points(firsts, lasts, frequency).sum())
    points = max(whole, per_series)
    if points > budget:
        raise error(
            field_name,
            f"The frequency {frequency} makes about {points:,.0f} steps from {pd.Timestamp(start).isoformat()} to "
            f"{pd.Timestamp(last).isoformat()} for {rows:,} rows (at most {budget:,}): "
            "choose a coarser frequency or check the times.",
        )


def _extended_anchor(anchor: pd.Timestamp, first: pd.Timestamp, frequency: str) -> pd.Timestamp:
    """The anchor moved back by whole steps to at or before ``first`` (the grid keeps its phase)."""
    if first >= anchor:
        return anchor
    steps = int(grid_points(first, anchor, frequency)) + 1
    return pd.date_range(end=anchor, periods=steps, freq=frequency)[0]


def snap_to_grid(times: np.ndarray, frequency: str, anchor: pd.Timestamp | None = None) -> tuple[np.ndarray, int]:
    """Each time moved to the nearest step of the frequency's grid, and how many moved. Times before
    the anchor stay apart: the grid extends backwards by whole steps."""
    snapped, _, moved = _snap(times, frequency, anchor)
    return snapped, moved


def _snap(times: np.ndarray, frequency: str, anchor: pd.Timestamp | None) -> tuple[np.ndarray, np.ndarray, int]:
    """``snap_to_grid``, with each time's step number on the grid (``times`` hold no NaT: callers drop them)."""
    values = np.asarray(times, dtype="datetime64[ns]").view("int64")  # the grid's unit (numpy: a request pays this)
    first, last = pd.Timestamp(int(values.min())), pd.Timestamp(int(values.max()))
    anchor = anchor if anchor is not None else _anchor(first, frequency)
    anchor = _extended_anchor(pd.Timestamp(anchor), first, frequency)
    grid_values = _grid_ns(pd.Timestamp(anchor), last, frequency)
    if len(grid_values) < 2:
        raise ForecastInputError("history", f"The times end before the grid of the frequency {frequency} starts.")
    right = np.clip(np.searchsorted(grid_values, values), 1, len(grid_values) - 1)
    left = right - 1
    nearest = np.where(values - grid_values[left] <= grid_values[right] - values, left, right)
    snapped = grid_values[nearest]
    return snapped.astype("datetime64[ns]"), nearest, int((snapped != values).sum())


@functools.lru_cache(maxsize=64)
def _grid_ns(anchor: pd.Timestamp, end: pd.Timestamp, frequency: str) -> np.ndarray:
    """The grid's points from the anchor to one step past ``end``, as nanoseconds (read-only). A
    served model's grid starts at its training anchor: requests that end at the same time reuse it."""
    grid = pd.date_range(anchor, end + to_offset(frequency), freq=frequency).as_unit("ns").asi8.copy()
    grid.flags.writeable = False
    return grid


def infer_frequency(times_per_series: list[pd.DatetimeIndex]) -> str | None:
    """The frequency of the longest series (pandas' own inference, then the median step when a few
    timestamps are missing); None when the steps name no frequency."""
    longest = max(times_per_series, key=len)
    if len(longest) >= 3:
        with warnings.catch_warnings():  # pandas 3 warns it will return an offset one day
            warnings.simplefilter("ignore")
            inferred = pd.infer_freq(longest)
        if inferred:
            return normalize_frequency(getattr(inferred, "freqstr", inferred))
    steps = np.concatenate([np.diff(t.asi8) for t in times_per_series if len(t) > 1] or [np.array([], "int64")])
    if not len(steps):
        return None
    median = pd.Timedelta(int(np.median(steps)), unit="ns")
    days = median / pd.Timedelta(days=1)
    every = pd.DatetimeIndex(np.concatenate([t.asi8 for t in times_per_series]))
    if median < pd.Timedelta(days=1):
        return normalize_frequency(to_offset(median).freqstr)
    if days == 1 and len(every) >= 10 and (every.day_of_week < 5).all():
        return "B"  # daily steps, never a weekend: business days
    if days in (1, 2, 3, 4, 5, 6) and days == int(days):
        return "D" if days == 1 else f"{int(days)}D"
    if days == 7:
        weekday = pd.Series(every.day_of_week).mode().iloc[0]
        return "W-" + ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"][weekday]
    months = {28: 1, 29: 1, 30: 1, 31: 1, 89: 3, 90: 3, 91: 3, 92: 3, 365: 12, 366: 12}.get(int(days))
    if months is None:
        return None
    starts, ends = (every.day == 1).mean(), every.is_month_end.mean()
    if max(starts, ends) < 0.5:
        return None
    suffix = "S" if starts >= ends else "E"
    if months == 1:
        return f"M{suffix}"
    names = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    first_month = int(pd.Series(every.month).mode().iloc[0])
    if months == 3:
        anchor = (first_month - 1) % 3 if suffix == "S" else (first_month - 1) % 3 + 9
        return normalize_frequency(f"Q{suffix}-{names[anchor]}")
    return normalize_frequency(f"Y{suffix}-{names[first_month - 1]}")


def regularise(frame: pd.DataFrame, frequency: str, anchor: pd.Timestamp | None = None) -> tuple[pd.DataFrame, dict]:
    """Per series (frame has "key", "time", "y" and known-ahead columns ka0..): times snapped to the
    grid, duplicates dropped (the last kept), missing steps added, the target interpolated.
    Returns the regular frame sorted by key and time, and the counts of what was fixed."""
    counts = {"moved": 0, "duplicates": 0, "missing_timestamps": 0, "missing_target": 0}
    snapped, steps, counts["moved"] = _snap(frame["time"].to_numpy(), frequency, anchor)
    regular = None if counts["moved"] else _already_regular(frame, snapped, steps)
    if regular is not None:
        return regular, counts
    return _fill_grid(frame.assign(time=snapped), frequency, counts), counts


def _fill_grid(frame: pd.DataFrame, frequency: str, counts: dict) -> pd.DataFrame:
    """``regularise`` of snapped times: deduplicate, trim, add the missing steps, interpolate."""
    # a repeated timestamp keeps its last value of each column (a missing one does not win over a value)
    deduplicated = frame.groupby(["key", "time"], sort=True, dropna=False).last().reset_index()
    counts["duplicates"] = len(frame) - len(deduplicated)
    frame = deduplicated
    counts["missing_target"] = int(frame["y"].isna().sum())
    # a series starts and ends at a target value: rows before the first or after the last have none
    # to interpolate from (filling them flat would move the forecast's origin)
    has_y = frame["y"].notna()
    seen = has_y.groupby(frame["key"]).cummax()
    seen_after = has_y[::-1].groupby(frame["key"][::-1]).cummax()[::-1]
    frame = frame[seen & seen_after]
    parts = []
    for key, part in frame.groupby("key", sort=True):
        grid = pd.date_range(part["time"].iloc[0], part["time"].iloc[-1], freq=frequency)
        full = part.set_index("time").reindex(grid)
        counts["missing_timestamps"] += len(grid) - len(part)
        full["key"] = key
        full["y"] = full["y"].interpolate(limit_area="inside")
        extra = [c for c in full.columns if c.startswith("ka")]
        if extra:
            full[extra] = full[extra].ffill().bfill()
        full.index.name = "time"
        parts.append(full.reset_index())
    out = pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]
    return out[["key", "time", "y", *[c for c in out.columns if c.startswith("ka")]]]


def _already_regular(frame: pd.DataFrame, times: np.ndarray, steps: np.ndarray) -> pd.DataFrame | None:
    """What ``regularise`` makes of a frame whose series are already regular (every time on the
    grid, one row per step, no gap, no missing value): the same rows sorted by key and time. None
    otherwise. A scoring request's recent history usually is, and the general path's per-series
    reindexing costs several milliseconds a series."""
    extra = [c for c in frame.columns if c.startswith("ka")]
    if frame[["y", *extra]].isna().to_numpy().any():
        return None
    codes, _ = pd.factorize(frame["key"], sort=True)
    order = np.lexsort((steps, codes))
    codes, steps = codes[order], steps[order]
    within = codes[1:] == codes[:-1]
    if not np.all(np.diff(steps)[within] == 1):  # 0: a repeated time; more than 1: a gap
        return None
    out = frame.iloc[order].reset_index(drop=True)
    out["time"] = times[order]
    return out[["key", "time", "y", *extra]]


# ----------------------------------------------------------------------------------------------
# prepare


@dataclass
class Prepared:
    frame: pd.DataFrame  # long: series columns, time column, target, known-ahead (encoded)
    frequency: str
    frequency_inferred: bool
    season_length: int
    series: list[dict]
    guardrails: list[dict]
    backtest_windows: int  # the windows the shortest series allows (<= the setting)
    panel: Panel  # the same data as arrays, per series, for the models
    known_ahead_encodings: dict
    anchor: pd.Timestamp


def min_history(settings: ForecastSettings, windows: int = 1) -> int:
    """Rows a series needs: a training part of max(horizon, 3) and, per window, gap + horizon."""
    return max(settings.horizon, 3) + settings.gap + settings.horizon * windows


def prepare(df: pd.DataFrame, settings: ForecastSettings) -> Prepared:
    """Regular series from a long table, with guardrails; raises ForecastSettingsError(field, message)."""
    try:
        return _prepare(df, settings)
    except (OverflowError, pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta) as exc:
        # times near pandas' limits (1677, 2262): the grid or its next step is out of range
        raise ForecastSettingsError(
            "time_column", f"The times reach the limits of dates pandas can hold (1677 to 2262): {exc}"
        ) from None


def _prepare(df: pd.DataFrame, settings: ForecastSettings) -> Prepared:
    settings.check()
    columns = [settings.time_column, settings.target_column, *settings.series_columns, *settings.known_ahead]
    for name, value in (("time_column", settings.time_column), ("target_column", settings.target_column)):
        if value not in df.columns:
            raise ForecastSettingsError(name, f"{name} {value!r} is not a column of the data.")
    for name in ("series_columns", "known_ahead"):
        missing = [c for c in getattr(settings, name) if c not in df.columns]
        if missing:
            raise ForecastSettingsError(name, f"{name}: {missing[0]!r} is not a column of the data.")
    del columns
    if not len(df):
        raise ForecastSettingsError("time_column", "The data has no rows.")
    times = parse_times(df[settings.time_column], settings.time_column, field_name="time_column")
    target = parse_target(df[settings.target_column], settings.target_column, field_name="target_column")
    encodings = {c: known_ahead_encoding(df[c]) for c in settings.known_ahead}
    long = pd.DataFrame({"key": series_key_columns(df, settings.series_columns), "time": times, "y": target})
    for i, column in enumerate(settings.known_ahead):
        long[f"ka{i}"] = encode_known_ahead(df[column], encodings[column])
    no_time = int(long["time"].isna().sum())
    long = long[long["time"].notna()]
    if long.empty:
        raise ForecastSettingsError("time_column", f"The time column {settings.time_column!r} is empty.")
    empty_series = [k for k, part in long.groupby("key") if part["y"].notna().sum() == 0]
    if empty_series:
        raise ForecastSettingsError(
            "target_column", f"The series {_describe_key(empty_series[0], settings)} has no target values."
        )

    guardrails = {}
    per_series = [pd.DatetimeIndex(part["time"].drop_duplicates().sort_values()) for _, part in long.groupby("key")]
    inferred = settings.frequency is None
    frequency = settings.frequency or infer_frequency(per_series)
    if frequency is None:
        raise ForecastSettingsError(
            "frequency",
            "The timestamps are irregular: no frequency fits them. "
            "Choose a frequency (they are then moved to the nearest step).",
        )
    anchor = _anchor(pd.Timestamp(long["time"].min()), frequency)
    check_grid_size(long, frequency, anchor, ForecastSettingsError, "frequency")
    _, moved = snap_to_grid(long["time"].to_numpy(), frequency, anchor)
    share = moved / len(long)
    if inferred and share > MAX_OFF_GRID_SHARE:
        raise ForecastSettingsError(
            "frequency",
            f"The timestamps are irregular: {share:.0%} of them are off the inferred {frequency} steps. "
            "Choose a frequency (they are then moved to the nearest step).",
        )
    regular, counts = regularise(long, frequency, anchor)
    season_length = settings.season_length or season_length_for(frequency)
    how = "inferred" if inferred else "chosen"
    if moved:
        guardrails["frequency"] = (
            "fixed",
            f"Frequency {frequency} ({how}); {moved} timestamps off its steps were moved to the nearest step.",
        )
    else:
        guardrails["frequency"] = ("passed", f"Frequency {frequency} ({how}), season length {season_length}.")
    filled = counts["missing_timestamps"]
    message = (
        f"{filled} missing timestamps were added; their target was interpolated."
        if filled
        else "No timestamp is missing."
    )
    if no_time:
        message += f" {no_time} rows without a time were dropped."
    guardrails["missing_timestamps"] = ("fixed" if filled or no_time else "passed", message)
    dup = counts["duplicates"]
    guardrails["duplicate_timestamps"] = (
        ("fixed", f"{dup} rows repeated a series' timestamp; the last of each was kept.")
        if dup
        else ("passed", "No series repeats a timestamp.")
    )
    missing = counts["missing_target"]
    guardrails["missing_target"] = (
        ("fixed", f"{missing} missing or infinite target values were interpolated (or dropped at a series' ends).")
        if missing
        else ("passed", "No target value is missing.")
    )

    lengths = regular.groupby("key").size()
    shortest_key, shortest = lengths.idxmin(), int(lengths.min())
    need = min_history(settings)
    if shortest < need:
        raise ForecastSettingsError(
            "horizon",
            f"Horizon {settings.horizon} needs at least "
            f"{max(settings.horizon, 3)}+{settings.gap}+{settings.horizon} = {need} "
            f"rows per series (a training part and one backtest window, gap {settings.gap}); the shortest series"
            f"{' (' + _describe_key(shortest_key, settings) + ')' if settings.series_columns else ''} has {shortest}.",
        )
    windows = settings.backtest_windows
    while windows > 1 and shortest < min_history(settings, windows):
        windows -= 1
    if windows < settings.backtest_windows:
        guardrails["history_length"] = (
            "warning",
            f"The shortest series has {shortest} rows: "
            f"{windows} of the {settings.backtest_windows} backtest windows fit.",
        )
    else:
        guardrails["history_length"] = (
            "passed",
            f"The shortest series has {shortest} rows: {windows} backtest windows fit.",
        )

    keys = sorted(regular["key"].unique())
    series = [_key_dict(k, settings.series_columns) for k in keys]
    panel = _panel(regular, keys, len(settings.known_ahead))
    frame = regular.rename(columns={"time": settings.time_column, "y": settings.target_column})
    for i, column in enumerate(settings.known_ahead):
        frame = frame.rename(columns={f"ka{i}": column})
    key_parts = (
        frame["key"].str.split(SERIES_KEY_SEPARATOR, expand=True, regex=False) if settings.series_columns else None
    )
    for i, column in enumerate(settings.series_columns):
        frame[column] = key_parts[i]
    frame = frame[[*settings.series_columns, settings.time_column, settings.target_column, *settings.known_ahead]]
    return Prepared(
        frame=frame.reset_index(drop=True),
        frequency=frequency,
        frequency_inferred=inferred,
        season_length=season_length,
        series=series,
        guardrails=[{"name": n, "status": guardrails[n][0], "message": guardrails[n][1]} for n in GUARDRAILS],
        backtest_windows=windows,
        panel=panel,
        known_ahead_encodings=encodings,
        anchor=anchor,
    )


def _key_dict(key: str, columns: list[str]) -> dict:
    if not columns:
        return {}
    return dict(zip(columns, key.split(SERIES_KEY_SEPARATOR), strict=True))


def _describe_key(key: str, settings: ForecastSettings) -> str:
    return ", ".join(f"{c}={v}" for c, v in _key_dict(key, settings.series_columns).items()) or "the series"


def _panel(regular: pd.DataFrame, keys: list[str], n_known: int, codes: dict | None = None) -> Panel:
    codes = codes if codes is not None else {k: i for i, k in enumerate(keys)}
    out = []
    for key, part in regular.groupby("key", sort=True):
        known = (
            part[[f"ka{i}" for i in range(n_known)]].to_numpy(dtype="float64") if n_known else np.zeros((len(part), 0))
        )
        out.append(
            Series(
                key=key,
                code=codes.get(key, -1),
                times=part["time"].to_numpy().astype("datetime64[ns]"),
                y=part["y"].to_numpy(dtype="float64"),
                known=known,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------
# metrics


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in 0..200; a zero forecast of a zero actual counts as no error."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(np.abs(actual - forecast), denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(200.0 * np.mean(ratio))


def forecast_metrics(actual, forecast, history, season_length: int) -> dict[str, float]:
    """The five metrics of one series' forecast window, against its history before the origin.
    RMSE and MAE are regression's; normalised RMSE divides by the range of the history before the
    origin (not of the window's actuals, as regression's does: a short window's range is often ~0)."""
    actual, forecast, history = (np.asarray(a, dtype="float64") for a in (actual, forecast, history))
    mae = regression_score("mae", actual, forecast)
    rmse = regression_score("rmse", actual, forecast)
    scale = mase_scale(history, season_length)
    spread = float(np.max(history) - np.min(history)) if len(history) else float("nan")
    return {
        "mase": mae / scale if np.isfinite(scale) and scale > 0 else float("nan"),
        "smape": smape(actual, forecast),
        "rmse": rmse,
        "mae": mae,
        "normalized_rmse": rmse / spread if np.isfinite(spread) and spread > 0 else float("nan"),
    }


def mean_metrics(rows: list[dict]) -> dict[str, float | None]:
    """The mean of each metric over windows and series (undefined values left out; None if all are)."""
    out = {}
    for name in FORECAST_METRICS:
        values = np.array([r[name] for r in rows], dtype="float64")
        values = values[np.isfinite(values)]
        out[name] = float(f"{values.mean():.7g}") if len(values) else None
    return out


# ----------------------------------------------------------------------------------------------
# search


@dataclass
class Backtest:
    """One candidate's rolling-origin backtest: forecasts and actuals per window and series."""

    algorithm: str
    label: str
    forecasts: list[list[np.ndarray]] = field(default_factory=list)  # [window][series] -> horizon values
    metrics: dict = field(default_factory=dict)
    score: float = math.inf
    seconds: float = 0.0
    status: str = "succeeded"
    error: str = ""
    state: dict | None = None  # the member refit on the whole history
    members: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class SearchResult:
    leaderboard: list[dict]
    best: dict
    metrics: dict
    windows: list[dict]
    forecaster: Forecaster
    stop_reason: str = ""


def _windows(panel: Panel, settings: ForecastSettings, windows: int) -> list[list[int]]:
    """Per window, per series: the cut (training is y[:cut]); the last window's test ends each series."""
    return [
        [len(s.y) - settings.gap - settings.horizon - (windows - 1 - w) * settings.horizon for s in panel]
        for w in range(windows)
    ]


def _cut(series: Series, cut: int) -> Series:
    return Series(
        key=series.key, code=series.code, times=series.times[:cut], y=series.y[:cut], known=series.known[:cut]
    )


def _future_known(series: Series, cut: int, steps: int) -> np.ndarray:
    """The known-ahead values of the steps after the cut (backtests know them from the data)."""
    return series.known[cut : cut + steps]


def search(
    prepared: Prepared,
    settings: ForecastSettings,
    *,
    seed: int = 0,
    deadline: float | None = None,
    log=lambda msg: None,
) -> SearchResult:
    """Backtest every algorithm on rolling origins (and an ensemble of the best), within the deadline."""
    started = time.monotonic()
    deadline = deadline if deadline is not None else started + float(settings.timeout_s)
    panel, m = prepared.panel, prepared.season_length
    steps = settings.gap + settings.horizon
    cuts = _windows(panel, settings, prepared.backtest_windows)
    context = models.Context(
        season_length=m,
        frequency=prepared.frequency,
        horizon=settings.horizon,
        gap=settings.gap,
        seed=seed,
        n_series=len(prepared.series),
        n_known=len(settings.known_ahead),
        nonnegative=bool(all((s.y >= 0).all() for s in panel)),
        deadline=deadline,
        anchor_ns=int(prepared.anchor.value),
    )
    algorithms = settings.algorithms or list(FORECAST_ALGORITHMS)
    if "seasonal_naive" not in algorithms:  # the reference every run has (and the fallback that always fits)
        algorithms = ["seasonal_naive", *algorithms]
    if len(panel) >= MANY_SERIES_FIRST_GLOBAL:
        # local models cost time per series: the global ones (one fit over every series) go first
        algorithms = sorted(algorithms, key=lambda a: (a != "seasonal_naive", not models.uses_known_ahead(a)))
    results: list[Backtest] = []
    stop_reason = "every algorithm was backtested"
    for algorithm in algorithms:
        candidate = Backtest(algorithm=algorithm, label=ALGORITHM_LABELS[algorithm])
        results.append(candidate)
        if algorithm != "seasonal_naive" and time.monotonic() >= deadline:
            candidate.status, candidate.error = "failed", "Skipped: the time budget ran out before it started."
            stop_reason = "the time budget ran out"
            continue
        log(f"Backtesting {candidate.label} on {len(cuts)} rolling origins")
        began = time.monotonic()
        try:
            for window_cuts in cuts:
                train = [_cut(s, c) for s, c in zip(panel, window_cuts, strict=True)]
                future = [_future_known(s, c, steps) for s, c in zip(panel, window_cuts, strict=True)]
                state = models.fit(algorithm, train, context)
                predictions = models.predict(state, train, steps, future, context, stored=True)
                candidate.forecasts.append([p[settings.gap :] for p in predictions])
            candidate.state = models.fit(algorithm, panel, context)
        except OutOfTime:
            candidate.status, candidate.error = "failed", "Skipped: the time budget ran out while it was fitted."
            stop_reason = "the time budget ran out"
        except Exception as exc:  # noqa: BLE001 - a failing model is a leaderboard row, not a failed run
            candidate.status, candidate.error = "failed", f"{exc.__class__.__name__}: {str(exc)[:300]}"
        candidate.seconds = round(time.monotonic() - began, 3)
        if candidate.status == "succeeded":
            _score(candidate, panel, cuts, settings, m)
            log(f"{candidate.label}: {settings.primary_metric} {candidate.score:.4g} in {candidate.seconds:.1f} s")
        else:
            log(f"{candidate.label}: {candidate.error}")
    ensemble = _ensemble(results, panel, cuts, settings, m)
    if ensemble is not None:
        results.append(ensemble)
    succeeded = sorted((r for r in results if r.status == "succeeded"), key=lambda r: r.score)
    failed = [r for r in results if r.status != "succeeded"]
    if not succeeded:
        raise RuntimeError(
            "No forecasting model could be fitted: " + "; ".join(f"{r.algorithm}: {r.error}" for r in failed)
        )
    # The lowest backtest score wins outright. Rules that prefer a simpler model (or seasonal naive,
    # or a 50/50 hedge with it) when the lead is within one standard error of the window scores were
    # measured on the public suite and each made more series worse than better (bench/README.md).
    best = succeeded[0]
    members = best.members or [(best.algorithm, 1.0)]
    by_name = {r.algorithm: r for r in results if r.algorithm != "ensemble"}
    sigma = _interval_sigma(best, panel, cuts, settings, m)
    forecaster = Forecaster(
        settings=settings.to_dict(),
        frequency=prepared.frequency,
        season_length=m,
        series=prepared.series,
        panel=panel,
        members=[
            {"algorithm": name, "weight": float(weight), "state": by_name[name].state} for name, weight in members
        ],
        interval_sigma=sigma,
        known_ahead_encodings=prepared.known_ahead_encodings,
        nonnegative=context.nonnegative,
        anchor=prepared.anchor,
    )
    leaderboard = [_row(rank, r, settings) for rank, r in enumerate(succeeded, 1)]
    leaderboard += [_row(None, r, settings) for r in failed]
    return SearchResult(
        leaderboard=leaderboard,
        best=leaderboard[0],
        metrics=dict(best.metrics),
        windows=_chart_windows(best, panel, cuts, settings, sigma, prepared, context.nonnegative),
        forecaster=forecaster,
        stop_reason=stop_reason,
    )


def _row(rank, candidate: Backtest, settings: ForecastSettings) -> dict:
    return {
        "rank": rank,
        "algorithm": candidate.algorithm,
        "label": candidate.label,
        "score": None if not math.isfinite(candidate.score) else float(f"{candidate.score:.7g}"),
        "metrics": dict(candidate.metrics),
        "seconds": candidate.seconds,
        "status": candidate.status,
        "error": candidate.error,
        **(
            {"members": [{"algorithm": a, "weight": round(w, 4)} for a, w in candidate.members]}
            if candidate.members
            else {}
        ),
    }


def _score(candidate: Backtest, panel: Panel, cuts, settings: ForecastSettings, m: int) -> None:
    rows = []
    for window_cuts, forecasts in zip(cuts, candidate.forecasts, strict=True):
        for s, cut, forecast in zip(panel, window_cuts, forecasts, strict=True):
            start = cut + settings.gap
            rows.append(forecast_metrics(s.y[start : start + settings.horizon], forecast, s.y[:cut], m))
    candidate.metrics = mean_metrics(rows)
    score = candidate.metrics[settings.primary_metric]
    if score is None:  # e.g. MASE of constant histories: fall back on the scale-free sMAPE
        score = candidate.metrics["smape"]
    candidate.score = float(score) if score is not None else math.inf


def _ensemble(results: list[Backtest], panel: Panel, cuts, settings, m: int) -> Backtest | None:
    """The weighted mean of the best two or three (weights from inverse error), if it backtests better
    than the best of them; the better of the two sizes."""
    ranked = sorted((r for r in results if r.status == "succeeded" and math.isfinite(r.score)), key=lambda r: r.score)
    best: Backtest | None = None
    for size in (2, 3):
        if len(ranked) < size:
            break
        chosen = ranked[:size]
        inverse = np.array([1.0 / max(r.score, 1e-9) for r in chosen])
        weights = inverse / inverse.sum()
        candidate = Backtest(
            algorithm="ensemble",
            label="Ensemble of " + ", ".join(r.algorithm for r in chosen),
            members=[(r.algorithm, float(w)) for r, w in zip(chosen, weights, strict=True)],
            seconds=0.0,
        )
        candidate.forecasts = [
            [sum(w * r.forecasts[wi][si] for r, w in zip(chosen, weights, strict=True)) for si in range(len(panel))]
            for wi in range(len(cuts))
        ]
        _score(candidate, panel, cuts, settings, m)
        if best is None or candidate.score < best.score:
            best = candidate
    if best is None or best.score >= ranked[0].score:
        return None
    return best


def _interval_sigma(best: Backtest, panel: Panel, cuts, settings: ForecastSettings, m: int) -> np.ndarray:
    """Per horizon step, the RMS of the backtest errors scaled per series (non-decreasing in the step)."""
    errors = []
    for window_cuts, forecasts in zip(cuts, best.forecasts, strict=True):
        for s, cut, forecast in zip(panel, window_cuts, forecasts, strict=True):
            start = cut + settings.gap
            actual = s.y[start : start + settings.horizon]
            errors.append((actual - forecast) / series_scale(s.y[:cut], m))
    squared = np.nanmean(np.square(np.array(errors)), axis=0)
    sigma = np.sqrt(np.nan_to_num(squared, nan=1.0))
    return np.maximum.accumulate(np.maximum(sigma, 1e-9))


def _interval(forecast: np.ndarray, sigma: np.ndarray, scale: float, level: float, nonnegative: bool):
    z = _z_score(level)
    lower, upper = forecast - z * sigma * scale, forecast + z * sigma * scale
    if nonnegative:
        lower = np.maximum(lower, 0.0)
    return lower, upper


@functools.lru_cache(maxsize=128)
def _z_score(level: float) -> float:
    return float(norm.ppf(0.5 + level / 2))


def _chart_windows(best: Backtest, panel, cuts, settings, sigma, prepared: Prepared, nonnegative: bool) -> list[dict]:
    m, shown = prepared.season_length, min(len(panel), MAX_CHART_SERIES)
    windows = []
    for window_cuts, forecasts in zip(cuts, best.forecasts, strict=True):
        series = []
        for s, cut, forecast in list(zip(panel, window_cuts, forecasts, strict=True))[:shown]:
            start = cut + settings.gap
            lower, upper = _interval(forecast, sigma, series_scale(s.y[:cut], m), 0.9, nonnegative)
            series.append(
                {
                    "key": prepared.series[s.code],
                    "time": [pd.Timestamp(t).isoformat() for t in s.times[start : start + settings.horizon]],
                    "actual": _floats(s.y[start : start + settings.horizon]),
                    "forecast": _floats(forecast),
                    "lower": _floats(lower),
                    "upper": _floats(upper),
                }
            )
        origin = max(pd.Timestamp(s.times[c - 1]) for s, c in zip(panel, window_cuts, strict=True))
        windows.append({"origin": origin.isoformat(), "series": series})
    return windows


def _floats(values) -> list[float]:
    return [float(f"{v:.7g}") for v in np.asarray(values, dtype="float64")]


# ----------------------------------------------------------------------------------------------
# the served model


class Forecaster:
    """A fitted forecast model: its members (and weights), interval widths and the stored history."""

    def __init__(self, *, settings: dict, frequency: str, season_length: int, series: list[dict], panel: Panel,
                 members: list[dict], interval_sigma: np.ndarray, known_ahead_encodings: dict, nonnegative: bool,
                 anchor: pd.Timestamp):  # fmt: skip
        self.settings = dict(settings)
        self.frequency = frequency
        self.season_length = int(season_length)
        self.horizon = int(settings["horizon"])
        self.gap = int(settings.get("gap") or 0)
        self.series = [dict(s) for s in series]
        self.series_codes = {s.key: s.code for s in panel}
        self.members = members
        self.interval_sigma = np.asarray(interval_sigma, dtype="float64")
        self.known_ahead_encodings = known_ahead_encodings
        self.nonnegative = bool(nonnegative)
        self.anchor_ns = int(pd.Timestamp(anchor).value)
        # the stored history, as flat arrays sorted by code (then time): a series is one slice
        panel = sorted(panel, key=lambda s: s.code)
        self.history = {
            "code": np.concatenate([np.full(len(s.y), s.code, dtype="int64") for s in panel]),
            "time": np.concatenate([s.times.astype("datetime64[ns]").astype("int64") for s in panel]),
            "y": np.concatenate([s.y for s in panel]),
            "known": np.concatenate([s.known for s in panel]),
        }

    # what callers read
    @property
    def time_column(self) -> str:
        return self.settings["time_column"]

    @property
    def target_column(self) -> str:
        return self.settings["target_column"]

    @property
    def series_columns(self) -> list[str]:
        return list(self.settings.get("series_columns") or [])

    @property
    def known_ahead(self) -> list[str]:
        return list(self.settings.get("known_ahead") or [])

    @property
    def uses_known_ahead(self) -> bool:
        return bool(self.known_ahead) and any(models.uses_known_ahead(m["algorithm"]) for m in self.members)

    @property
    def algorithm(self) -> str:
        return self.members[0]["algorithm"] if len(self.members) == 1 else "ensemble"

    def boosting_estimators(self) -> dict[int, object]:
        """The fitted estimators of the boosting members by member position: what an ONNX twin can
        stand in for (each predicts rows of ``n_features_in_`` float64 features)."""
        found = {i: models.boosting_estimator(m["state"]) for i, m in enumerate(self.members)}
        return {i: estimator for i, estimator in found.items() if estimator is not None}

    def use_regressors(self, regressors: dict) -> None:
        """From now on, predict these boosting members' feature rows with the given callables (by
        member position; verified ONNX twins). Not saved with the model: set after loading it."""
        self._regressors = dict(regressors)

    def regressor_difference(self, regressors: dict, max_series: int = 50) -> float:
        """The largest difference, relative to at least 1, between each member's forecasts through its
        estimator and through ``regressors`` (by member position), from the stored history: each
        series as it is and as a series never seen (no code). What a twin must pass to serve."""
        panel = self._stored_panel(None, None)[:max_series]
        steps = self.gap + self.horizon
        context = self._context()
        worst = 0.0
        for variant in (panel, [replace(s, code=-1) for s in panel]):
            future = [np.tile(s.known[-1], (steps, 1)) for s in variant]  # the last known values held
            for position, regressor in regressors.items():
                state = self.members[position]["state"]
                reference = np.concatenate(models.predict(state, variant, steps, future, context, stored=True))
                twin = models.predict(state, variant, steps, future, context, stored=True, regressor=regressor)
                twin = np.concatenate(twin)
                if (np.isnan(reference) != np.isnan(twin)).any():
                    return math.inf
                worst = max(worst, float(np.nanmax(np.abs(reference - twin) / np.maximum(np.abs(reference), 1.0))))
        return worst

    def _context(self, deadline: float | None = None) -> models.Context:
        return models.Context(
            season_length=self.season_length,
            frequency=self.frequency,
            horizon=self.horizon,
            gap=self.gap,
            seed=0,
            n_series=len(self.series),
            n_known=len(self.known_ahead),
            nonnegative=self.nonnegative,
            deadline=deadline,
            anchor_ns=self.anchor_ns,
        )

    def _stored_panel(self, origin, series: list[dict] | None) -> Panel:
        history = self.history
        wanted = None if series is None else {self._key_of(s) for s in series}
        cut_ns = None
        if origin is not None:
            try:
                cut = pd.Timestamp(origin)
            except (ValueError, TypeError):
                raise ForecastInputError("origin", f"The origin {origin!r} does not parse as a time.") from None
            if cut.tzinfo is not None:  # the history is in wall time
                cut = cut.tz_localize(None)
            cut_ns = int(cut.value)
            if not (history["time"] == cut_ns).any():
                first, last = (pd.Timestamp(int(v)).isoformat() for v in (history["time"].min(), history["time"].max()))
                raise ForecastInputError(
                    "origin",
                    f"The origin {cut.isoformat()} is not a time of the stored history "
                    f"({first} to {last}, {self.frequency}).",
                )
        panel = []
        for s in self.series:
            key = self._key_of(s)
            code = self.series_codes[key]
            if wanted is not None and key not in wanted:
                continue
            start, end = np.searchsorted(history["code"], [code, code + 1])
            if cut_ns is not None:  # times are sorted within a series
                end = start + int(np.searchsorted(history["time"][start:end], cut_ns, side="right"))
            rows = slice(start, end)
            if end - start < 3:
                if cut_ns is not None and wanted is None:
                    continue  # a series that starts after the origin has nothing to forecast from
                raise ForecastInputError(
                    "origin", f"The series {self._describe(key)} has fewer than 3 points before the origin."
                )
            panel.append(
                Series(
                    key=key,
                    code=code,
                    times=history["time"][rows].astype("datetime64[ns]"),
                    y=history["y"][rows],
                    known=history["known"][rows],
                )
            )
        if wanted is not None:
            unknown = wanted - {s.key for s in panel}
            if unknown:
                raise ForecastInputError("series", f"Unknown series: {self._describe(sorted(unknown)[0])}.")
        if not panel:
            raise ForecastInputError("origin", "No series has history before the origin.")
        return panel

    def _key_of(self, values: dict) -> str:
        missing = [c for c in self.series_columns if c not in values]
        if missing:
            raise ForecastInputError(
                missing[0], f"A series is named by {', '.join(self.series_columns)}; {missing[0]!r} is missing."
            )
        return _series_key_text(series_id_text(values[c]) for c in self.series_columns)

    def _describe(self, key: str) -> str:
        return ", ".join(f"{c}={v}" for c, v in _key_dict(key, self.series_columns).items()) or "the series"

    def _given_panel(self, history: pd.DataFrame | Mapping) -> Panel:
        if isinstance(history, Mapping):  # a request's columns, as its signature cast them
            arrays = self._cast_arrays(history)
            if arrays is None:
                arrays = self._history_arrays(pd.DataFrame(dict(history)))
        else:
            arrays = self._history_arrays(history)
        keys, times, y, known = arrays
        timed = ~np.isnat(times)
        if not timed.any():
            raise ForecastInputError(self.time_column, "The history has no times.")
        keys, times, y, known = keys[timed], times[timed], y[timed], known[timed]
        codes, names = pd.factorize(keys, sort=True)  # names sorted: the panel's order
        valued = np.bincount(codes, weights=~np.isnan(y), minlength=len(names))
        if (valued == 0).any():
            empty = names[int(np.flatnonzero(valued == 0)[0])]
            raise ForecastInputError(self.target_column, f"The series {self._describe(empty)} has no target values.")
        order = np.lexsort((times, codes))
        codes, times, y, known = codes[order], times[order], y[order], known[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        ends = np.r_[starts[1:], len(codes)]
        anchor = pd.Timestamp(self.anchor_ns)
        _check_grid_points(len(codes), times[starts], times[ends - 1], self.frequency, anchor, ForecastInputError,
                           "history")  # fmt: skip
        panel = self._regular_panel(names, starts, ends, times, y, known, anchor)
        if panel is None:  # off the grid, gaps, repeats or missing values: the general path fixes them
            long = pd.DataFrame({"key": names[codes], "time": times, "y": y})
            for i in range(known.shape[1]):
                long[f"ka{i}"] = known[:, i]
            regular, _ = regularise(long, self.frequency, anchor)
            panel = _panel(regular, list(names), known.shape[1], self.series_codes)
        short = min(panel, key=lambda s: len(s.y))
        if len(short.y) < 3:
            raise ForecastInputError(
                "history",
                f"The series {self._describe(short.key)} has {len(short.y)} points of history; at least 3 are needed.",
            )
        return panel

    def _history_arrays(self, history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A history table's series keys, times (datetime64[ns]), targets and known-ahead values, each
        column parsed and checked (text dates and numbers too); raises naming the column at fault."""
        if not isinstance(history, pd.DataFrame) or history.empty:
            raise ForecastInputError("history", "The history has no rows.")
        for column in [self.time_column, self.target_column, *self.series_columns]:
            if column not in history.columns:
                raise ForecastInputError(column, f"The history has no column {column!r}.")
        keys = series_key_columns(history, self.series_columns, ForecastInputError, "history").to_numpy()
        times = parse_times(history[self.time_column], self.time_column, ForecastInputError).to_numpy()
        y = parse_target(history[self.target_column], self.target_column, ForecastInputError).to_numpy()
        known = np.zeros((len(history), len(self.known_ahead)))
        for i, column in enumerate(self.known_ahead):
            values = history[column] if column in history.columns else pd.Series(np.nan, index=history.index)
            known[:, i] = encode_known_ahead(values, self.known_ahead_encodings[column])
        return keys, times, y, known

    def _cast_arrays(self, columns: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``_history_arrays`` of columns the model's signature has already cast (a scoring request's:
        datetimes, float targets, text ids with NaN for missing), read without a DataFrame between
        (a one-series request took ~1.9 ms in process, now ~0.7); None for columns missing or not
        cast, which the general path parses and words the errors of."""
        if any(name not in columns for name in [self.time_column, self.target_column, *self.series_columns]):
            return None
        times, y = columns[self.time_column], np.asarray(columns[self.target_column])
        if getattr(times.dtype, "tz", None) is not None:  # the history is in wall time
            times = times.tz_localize(None)
        times = np.asarray(times)
        if times.dtype.kind != "M" or y.dtype.kind != "f" or not len(y):
            return None
        y = y.astype("float64")  # (a copy: infinite targets become missing values, as parse_target does)
        y[~np.isfinite(y)] = np.nan
        keys = (
            series_keys(columns, self.series_columns, ForecastInputError, "history")
            if self.series_columns
            else np.full(len(y), "", dtype=object)
        )
        known = np.zeros((len(y), len(self.known_ahead)))
        for i, column in enumerate(self.known_ahead):
            values = pd.Series(columns[column]) if column in columns else pd.Series(np.nan, index=range(len(y)))
            known[:, i] = encode_known_ahead(values, self.known_ahead_encodings[column])
        return keys, times.astype("datetime64[ns]"), y, known

    def _regular_panel(self, names, starts, ends, times, y, known, anchor) -> Panel | None:
        """The panel of a history already on the grid, sorted by series and time, with one row per
        step, no gap and no missing value (a scoring request's recent history usually is); None
        otherwise. ``regularise`` would give the same series through DataFrames, a few milliseconds."""
        if np.isnan(y).any() or np.isnan(known).any():
            return None
        snapped, steps, moved = _snap(times, self.frequency, anchor)
        if moved:
            return None
        within = np.ones(len(steps) - 1, dtype=bool)
        within[starts[1:] - 1] = False  # a series' first step follows another series' last
        if not np.all(np.diff(steps)[within] == 1):  # 0: a repeated time; more than 1: a gap
            return None
        return [
            Series(key=key, code=self.series_codes.get(key, -1), times=snapped[a:b], y=y[a:b], known=known[a:b])
            for key, a, b in zip(names, starts, ends, strict=True)
        ]

    def _future_panel(self, panel: Panel, future: pd.DataFrame | None, steps: int) -> list[np.ndarray]:
        """Per series, the known-ahead values of the steps (gap steps repeat the last known value)."""
        n_known = len(self.known_ahead)
        out = []
        needed = self.uses_known_ahead
        table = None
        if future is not None and n_known:
            if not isinstance(future, pd.DataFrame):
                raise ForecastInputError("future", "future must be rows of known-ahead values.")
            for column in [self.time_column, *self.series_columns]:
                if column not in future.columns:
                    raise ForecastInputError("future", f"The future rows have no column {column!r}.")
            table = pd.DataFrame(
                {
                    "key": series_key_columns(future, self.series_columns, ForecastInputError, "future"),
                    "time": parse_times(future[self.time_column], self.time_column, ForecastInputError, "future"),
                }
            )
            for i, column in enumerate(self.known_ahead):
                values = future[column] if column in future.columns else pd.Series(np.nan, index=future.index)
                table[f"ka{i}"] = encode_known_ahead(values, self.known_ahead_encodings[column])
            table = (
                table.dropna(subset=["time"]).drop_duplicates(["key", "time"], keep="last").set_index(["key", "time"])
            )
        for s in panel:
            times = step_times(pd.Timestamp(s.times[-1]), self.frequency, steps)
            values = np.tile(s.known[-1] if len(s.known) else np.full(n_known, np.nan), (steps, 1))
            if table is not None:
                found = table.reindex(pd.MultiIndex.from_arrays([[s.key] * steps, times])).to_numpy(dtype="float64")
                given = ~np.isnan(found)
                values = np.where(given, found, values)
            else:
                given = np.zeros((steps, n_known), dtype=bool)
            if needed:
                horizon_given = given[self.gap :]
                for i, column in enumerate(self.known_ahead):
                    if not horizon_given[:, i].all():
                        missing_at = times[self.gap :][~horizon_given[:, i]][0]
                        raise ForecastInputError(
                            "future",
                            f"The known-ahead column {column!r} has no value for {self._describe(s.key)} at "
                            f"{missing_at.isoformat()}: give it for every forecast step.",
                        )
            out.append(values)
        return out

    def forecast(self, history: pd.DataFrame | None = None, *, future: pd.DataFrame | None = None, origin=None,
                 level: float = 0.9, series: list[dict] | None = None,
                 deadline: float | None = None) -> pd.DataFrame:  # fmt: skip
        """The horizon's forecasts per series with interval bounds at ``level`` (see the module doc).
        ``deadline`` (a ``time.monotonic()`` value): local models refitted on a given history stop
        there with ForecastTimeout."""
        columns = self.forecast_columns(history, future=future, origin=origin, level=level, series=series,
                                        deadline=deadline)  # fmt: skip
        return pd.DataFrame(columns, columns=list(columns))

    def forecast_columns(self, history: pd.DataFrame | Mapping | None = None, *, future: pd.DataFrame | None = None,
                         origin=None, level: float = 0.9, series: list[dict] | None = None,
                         deadline: float | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """``forecast`` as columns (series columns, the time column as datetime64[ns], forecast,
        lower, upper): what an endpoint turns into JSON without a DataFrame between. The history
        may also be columns the model's signature has cast (``ValidatedBatch.columns``)."""
        try:
            return self._forecast(history, future=future, origin=origin, level=level, series=series, deadline=deadline)
        except OutOfTime:
            raise ForecastTimeout(
                "The history's series could not all be fitted in the time a request has: send fewer series."
            ) from None
        except (OverflowError, pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta, IndexError) as exc:
            # times near pandas' limits (1677, 2262): a grid or a forecast step out of range
            raise ForecastInputError(
                "history", f"The times cannot be forecast: they reach the limits of dates (1677 to 2262) ({exc})."
            ) from None

    def _forecast(self, history, *, future, origin, level, series, deadline) -> dict[str, np.ndarray]:
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.5 <= level <= 0.99:
            raise ForecastInputError("level", f"level must be a number between 0.5 and 0.99, not {level!r}.")
        if history is None:
            panel, stored = self._stored_panel(origin, series), True
        else:
            panel, stored = self._given_panel(history), False
            if series is not None:
                wanted = {self._key_of(s) for s in series}
                panel = [s for s in panel if s.key in wanted]
        steps = self.gap + self.horizon
        future_known = self._future_panel(panel, future, steps)
        context = self._context(deadline)
        combined = np.zeros((len(panel), self.horizon))
        regressors = getattr(self, "_regressors", {})  # (a model loaded from its file has none)
        for position, member in enumerate(self.members):
            predictions = models.predict(
                member["state"], panel, steps, future_known, context, stored=stored, regressor=regressors.get(position)
            )
            combined += member["weight"] * np.array([p[self.gap :] for p in predictions])
        if self.nonnegative:
            combined = np.maximum(combined, 0.0)
        bounds = [
            _interval(forecast, self.interval_sigma, series_scale(s.y, self.season_length), level, self.nonnegative)
            for s, forecast in zip(panel, combined, strict=True)
        ]
        ids = [_key_dict(s.key, self.series_columns) for s in panel]
        return {
            **{c: np.repeat(np.array([i[c] for i in ids], dtype=object), self.horizon) for c in self.series_columns},
            self.time_column: np.concatenate(
                [step_times(s.times[-1], self.frequency, steps)[self.gap :].to_numpy() for s in panel]
            ),
            "forecast": combined.reshape(-1),
            "lower": np.concatenate([lower for lower, _ in bounds]),
            "upper": np.concatenate([upper for _, upper in bounds]),
        }
