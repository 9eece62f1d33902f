"""The studio's only custom scikit-learn transformers.

Every class here must also be listed in ``modelformat.modelio.TRUSTED_TYPES`` (a model file is
data, never code: rule R2), and an ONNX export needs a converter for each (``modelformat``
recognises them by name), so keep this module small. Saved model files name these classes by this
module's path: moving them would stop those files loading.
Everything else in a pipeline is a standard scikit-learn or LightGBM class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

DATETIME_PARTS = ("year", "month", "day", "day_of_week", "hour")


def _frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    return pd.DataFrame(np.asarray(X, dtype=object))


class CastColumns(TransformerMixin, BaseEstimator):
    """Cast raw columns so that standard encoders accept whatever a scoring request sends.

    ``to="number"``: values become float64, anything unparsable becomes NaN (e.g. "" or "n/a").
    ``to="string"``: values become ``str`` (1 and "1" are the same category); missing stays NaN.
    ``to="text"``: one column becomes a 1-D array of strings with missing as "" (for TF-IDF).
    """

    def __init__(self, to: str = "string"):
        self.to = to

    def fit(self, X, y=None):
        if self.to not in ("number", "string", "text"):
            raise ValueError(f"CastColumns.to must be number, string or text; got {self.to!r}")
        frame = _frame(X)
        self.n_features_in_ = frame.shape[1]
        self.columns_ = [str(c) for c in frame.columns]
        return self

    def transform(self, X):
        check_is_fitted(self, "columns_")
        frame = _frame(X)
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"CastColumns expects {self.n_features_in_} columns, got {frame.shape[1]}")
        if self.to == "number":
            return np.column_stack(
                [pd.to_numeric(frame.iloc[:, j], errors="coerce").astype("float64") for j in range(frame.shape[1])]
            )
        if self.to == "text":
            col = frame.iloc[:, 0]
            return np.asarray([("" if _missing(v) else str(v)) for v in col], dtype=object)
        out = np.empty(frame.shape, dtype=object)
        for j in range(frame.shape[1]):
            out[:, j] = [np.nan if _missing(v) else _as_category(v) for v in frame.iloc[:, j]]
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "columns_")
        if self.to == "text":
            return np.asarray(self.columns_[:1], dtype=object)
        return np.asarray(input_features if input_features is not None else self.columns_, dtype=object)


def _missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v))


def _as_category(v) -> str:
    # 3.0 and 3 are the same category; so are True and "True".
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


class DatetimeParts(TransformerMixin, BaseEstimator):
    """Expand datetime columns into numeric parts (year, month, day, day of week, hour).

    Values are parsed with ``pandas.to_datetime`` (unparsable values become NaN). Parts that are
    constant in the training data (e.g. the hour of plain dates) are not produced.
    """

    def __init__(self, parts: tuple[str, ...] = DATETIME_PARTS):
        self.parts = parts

    def _parts(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        out = {}
        for j, name in enumerate(frame.columns):
            values = _to_datetime(frame.iloc[:, j])
            for part in self.parts:
                out[f"{name}_{part}"] = getattr(values.dt, part).astype("float64").to_numpy()
        return out

    def fit(self, X, y=None):
        unknown = set(self.parts) - set(DATETIME_PARTS)
        if unknown:
            raise ValueError(f"unknown datetime parts: {sorted(unknown)}")
        frame = _frame(X)
        self.n_features_in_ = frame.shape[1]
        self.columns_ = [str(c) for c in frame.columns]
        frame.columns = self.columns_
        parts = self._parts(frame)
        self.features_ = [k for k, v in parts.items() if len(np.unique(v[~np.isnan(v)])) > 1]
        return self

    def transform(self, X):
        check_is_fitted(self, "features_")
        frame = _frame(X).copy()
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"DatetimeParts expects {self.n_features_in_} columns, got {frame.shape[1]}")
        frame.columns = self.columns_
        parts = self._parts(frame)
        if not self.features_:
            return np.zeros((len(frame), 0))
        return np.column_stack([parts[k] for k in self.features_])

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "features_")
        return np.asarray(self.features_, dtype=object)


def _to_datetime(col: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        values = col
    else:
        values = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values
