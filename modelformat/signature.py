"""A model's input signature, and the check of scoring payloads against it (the hot path).

The signature is plain JSON, stored with each registered model version::

    {"version": 1,
     "columns": [
        {"name": "age", "type": "integer", "dtype": "float64", "nullable": true, "required": true},
        {"name": "plan", "type": "categorical", "dtype": "str", "nullable": false, "required": true,
         "categories": ["basic", "pro"], "categories_truncated": false},
        ...],
     "target": "churned",
     "classes": [0, 1]}

A regression's signature says so and what it predicts: ``"task": "regression", "classes": [],
"output": {"name": "Sale Price ($)", "type": "number"}``. A signature without ``task`` is a
classification's (what every model was before regression existed).

``type`` is the column's semantic type (numeric, integer, boolean, categorical, datetime, text,
identifier). ``dtype`` is the pandas dtype a payload is cast to, chosen from the training column's
own dtype so that the pipeline sees what it was trained on: ``float64`` (every number, integers
included: NaN is the missing value that every scikit-learn step accepts, where pandas' ``Int64``
and its ``NA`` break ColumnTransformer passthrough), ``bool`` (``bool`` when no value is missing,
else ``object`` holding True/False/NaN — what pandas makes of a boolean Parquet column with nulls),
``str`` / ``object`` (labels and text) or ``datetime64[unit]`` (optionally ``datetime64[unit, tz]``).
An ``integer`` column must receive whole numbers; a ``boolean`` column held as 0/1 numbers
(``float64``) also accepts true/false. ``categories`` lists the values seen in training (the most
frequent ``MAX_CATEGORIES``); it informs users and drift monitoring — unknown categories are
*accepted* and passed to the pipeline, whose encoders handle them as they were trained to.
``required`` is false for columns the model does not use (e.g. identifiers); they may be left out.

Accepted payloads (``validate_payload``), all JSON:

* records: ``[{"age": 31, "plan": "pro"}, ...]``
* a single record: ``{"age": 31, "plan": "pro"}`` (every value a scalar)
* columns: ``{"age": [31, 40], "plan": ["pro", "basic"]}`` (every value a list, equal lengths)
* split: ``{"columns": ["age", "plan"], "data": [[31, "pro"], [40, "basic"]]}`` (an ``"index"``
  key is allowed and ignored)
* any of the above inside one envelope key: ``{"inputs": ...}``, ``{"data": ...}``,
  ``{"input_data": ...}`` (Azure ML), ``{"dataframe_records": ...}``, ``{"dataframe_split": ...}``
  (MLflow) or ``{"instances": ...}`` — so that clients written for those services work unchanged.
  A key that is also a column of the signature is always read as a column.

Rules, decided for what a user of a REST endpoint needs:

* Columns the signature does not know are **ignored** (as Azure ML does: clients often send the
  whole row, target and ids included) and listed in ``ValidatedBatch.ignored``; with
  ``unknown_columns="error"`` they are refused, by name. When a required column is missing, the
  error also names the unknown columns that were sent, which catches typos.
* Every required column must be present in every record; a record without the key is refused with
  its row number. Send ``null`` for a missing value.
* ``null`` is accepted in every column, nullable in training or not: the pipeline imputes missing
  values (monitoring counts them). Empty strings count as null for non-text columns.
* Only safe casts: numbers as JSON numbers or numeric strings (``"3.5"``, ``"1,234.50"`` with
  thousands separators as spreadsheets write them); integers must be whole
  (``3.0`` and ``"3"`` are accepted, ``3.7`` is not); booleans as ``true``/``false``, ``0``/``1`` or
  the words true/false/yes/no/y/n/t/f (any case); labels as strings (numbers become strings: ``3``
  and ``3.0`` are both ``"3"``, ``true`` is ``"True"``); dates as ISO 8601 strings (in a DataFrame,
  also ``datetime.date``/``datetime`` objects, as Parquet ``date32`` columns read back). Booleans are
  not numbers, infinities are refused, nested arrays or objects are refused.
* At most ``max_rows`` rows (default ``MAX_ROWS``); more is ``too_many_rows`` (HTTP 413).

Every refusal is a ``PayloadError`` whose message names the column and the 1-based row at fault.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

import numpy as np
import pandas as pd

from .column_types import SEMANTIC_TYPES, infer_column_type

SIGNATURE_VERSION = 1
# The tasks a signature may declare (the same names as training.ml.tasks, which the model format does
# not import: it sits below training)
CLASSIFICATION, REGRESSION, FORECASTING = "classification", "regression", "forecasting"
TASKS = (CLASSIFICATION, REGRESSION, FORECASTING)
FORECAST_KEYS = ("time_column", "series_columns", "target_column", "known_ahead", "horizon", "frequency", "gap")
FORECAST_REQUEST_KEYS = ("history", "future", "level", "origin", "series")
MAX_FORECAST_SERIES = 1_000  # known series keys kept in a forecasting signature
MAX_ROWS = 10_000
MAX_CATEGORIES = 1_000
ENVELOPE_KEYS = ("inputs", "data", "input_data", "dataframe_records", "dataframe_split", "instances")
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})

_ABSENT = object()  # a record without the key (distinct from null)
_NUMBER_TYPES = frozenset({int, float, type(None)})
_NESTED_TYPES = (list, dict, tuple)
_MISSING_TYPES = (type(None), type(pd.NA), type(pd.NaT))


class PayloadError(ValueError):
    """A scoring payload that does not fit the signature; ``status`` is the HTTP status to answer."""

    def __init__(
        self, message: str, *, field: str | None = None, row: int | None = None, code: str = "invalid_payload"
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.row = row
        self.code = code

    @property
    def status(self) -> int:
        # too much asked is 413; a forecast that could not finish within the request's time is 503
        return {"too_many_rows": 413, "too_many_series": 413, "timeout": 503}.get(self.code, 400)

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message, "field": self.field, "row": self.row}


# --- Building a signature ------------------------------------------------------------------------
def _json_scalar(value):
    """A JSON-safe Python scalar (numpy scalars become int/float/str/bool)."""
    return value.item() if isinstance(value, np.generic) else value


def json_labels(values: Iterable) -> list:
    """Class labels or categories as JSON-safe values (numpy ints → int, numpy strings → str)."""
    return [_json_scalar(v) for v in values]


def _dtype_for(semantic: str, col: pd.Series) -> str:
    """The pandas dtype a payload column is cast to: follows the training dtype (see module doc)."""
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return str(dtype)
    if pd.api.types.is_numeric_dtype(dtype):
        return "float64"
    # labels, text, or values held as text: parse what has a value type, keep the rest as strings
    if semantic in ("numeric", "integer"):
        return "float64"
    if semantic == "boolean":
        values = col.dropna()
        if len(values) and values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            return "bool"  # booleans with nulls (object dtype)
    if semantic == "datetime":
        return "datetime64[us]"
    return "str" if isinstance(dtype, pd.StringDtype) or pd.api.types.is_string_dtype(dtype) else "object"


def _guess_type(name: str, col: pd.Series) -> str:
    return infer_column_type(name, col)  # the studio's own inference, when the caller gives no types


def _categories(col: pd.Series, limit: int) -> tuple[list, bool]:
    counts = col.dropna().value_counts(sort=True)
    truncated = len(counts) > limit
    values = counts.index[:limit].tolist()
    try:
        values = sorted(values)
    except TypeError:  # mixed types: keep frequency order
        pass
    return json_labels(values), truncated


def build_signature(
    X: pd.DataFrame,
    *,
    column_types: Mapping[str, str] | None = None,
    target: str | None = None,
    classes: Iterable | None = None,
    optional: Iterable[str] = (),
    max_categories: int = MAX_CATEGORIES,
    task: str = CLASSIFICATION,
    forecast: Mapping | None = None,
) -> dict:
    """The JSON signature of a model trained on the feature frame ``X`` (target column excluded).

    ``column_types`` maps names to semantic types (e.g. the featurization plan's); missing ones are
    inferred. ``optional`` names columns the model does not use (see ``unused_columns``): a payload
    may leave them out. ``task="regression"``: no classes, and the output is a number.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    if not isinstance(X, pd.DataFrame):
        raise TypeError("X must be a pandas DataFrame")
    given = dict(column_types or {})
    optional = set(optional)
    columns = []
    for name in X.columns:
        if not isinstance(name, str):
            raise ValueError(f"column names must be strings; got {name!r}")
        col = X[name]
        semantic = given.get(name) or _guess_type(name, col)
        if semantic not in SEMANTIC_TYPES:
            raise ValueError(f"column {name!r}: unknown semantic type {semantic!r}")
        dtype = _dtype_for(semantic, col)
        entry = {
            "name": name,
            "type": semantic,
            "dtype": dtype,
            "nullable": bool(col.isna().any()),
            "required": name not in optional,
        }
        if semantic in ("categorical", "boolean") and dtype != "bool" and not dtype.startswith("datetime"):
            values, truncated = _categories(col, max_categories)
            entry["categories"] = values
            entry["categories_truncated"] = truncated
        columns.append(entry)
    signature = {
        "version": SIGNATURE_VERSION,
        "columns": columns,
        "target": target,
        "classes": json_labels(classes) if classes is not None else None,
    }
    if task in (REGRESSION, FORECASTING):
        signature.update(task=task, classes=[], output={"name": target, "type": "number"})
    if task == FORECASTING:
        signature["forecast"] = dict(forecast or {})
    Signature(signature)  # checks the result
    return signature


def build_forecast_signature(frame: pd.DataFrame, *, column_types: Mapping[str, str], forecast: Mapping) -> dict:
    """A forecasting model's signature: its columns are the time column (a datetime), the series
    columns, the target (a number) and the known-ahead columns, as a history row has them;
    ``forecast`` holds the settings serving needs (``FORECAST_KEYS``, ``season_length`` and up to
    ``MAX_FORECAST_SERIES`` known series keys)."""
    time_column, target = forecast["time_column"], forecast["target_column"]
    names = [time_column, *forecast.get("series_columns", []), target, *forecast.get("known_ahead", [])]
    series_columns = list(forecast.get("series_columns", []))
    types = {**{n: column_types[n] for n in names if n in column_types}, time_column: "datetime", target: "numeric"}
    columns = frame[names].copy()
    for name in series_columns:  # ids, as text: store 3, 3.0 and "3" name one series (the engine's keys)
        types[name] = "categorical"
        columns[name] = columns[name].map(lambda v: None if _is_missing(v) else _label(v).strip()).astype(object)
    columns[time_column] = pd.to_datetime(columns[time_column], errors="coerce", format="mixed")
    columns[target] = pd.to_numeric(columns[target], errors="coerce")
    info = dict(forecast)
    info["series"] = list(info.get("series", []))[:MAX_FORECAST_SERIES]
    return build_signature(columns, column_types=types, target=target, task=FORECASTING, forecast=info)


def unused_columns(model, columns: Iterable[str]) -> set[str]:
    """Columns of ``columns`` that no ColumnTransformer inside ``model`` reads (empty when unsure).

    Looks through Pipelines, voting and stacking ensembles and FrozenEstimator wrappers. A member
    without a ColumnTransformer, or one that passes its remainder through, uses every column.
    """
    columns = list(columns)
    used: set[str] = set()
    for transformer in _column_transformers(model):
        if transformer is None:
            return set()
        if getattr(transformer, "remainder", "drop") != "drop":
            return set()
        for _, step, cols in getattr(transformer, "transformers_", []):
            if isinstance(step, str) and step == "drop":
                continue
            if isinstance(cols, str):
                cols = [cols]
            names = list(cols) if not callable(cols) else []
            if any(not isinstance(c, str) for c in names) or callable(cols):
                return set()
            used.update(names)
    return {c for c in columns if c not in used}


def _column_transformers(model):
    # deferred: scikit-learn only where a model object is at hand (training), not to validate a request
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(model, ColumnTransformer):
        yield model
        return
    if isinstance(model, Pipeline):
        first = model.steps[0][1]
        if isinstance(first, (ColumnTransformer, Pipeline)) or hasattr(first, "estimators_"):
            yield from _column_transformers(first)
        else:
            yield None
        return
    if hasattr(model, "estimator") and type(model).__name__ == "FrozenEstimator":
        yield from _column_transformers(model.estimator)
        return
    members = getattr(model, "estimators_", None)
    if members:
        for member in members:
            yield from _column_transformers(member)
        return
    yield None


# --- The compiled signature ----------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    dtype: str
    nullable: bool
    required: bool
    categories: tuple | None

    @property
    def kind(self) -> str:
        """How payload values are cast: number, integer, flag (0/1 numbers), boolean, string or datetime."""
        if self.dtype == "float64":
            return {"integer": "integer", "boolean": "flag"}.get(self.type, "number")
        if self.dtype == "bool":
            return "boolean"
        if self.dtype.startswith("datetime64"):
            return "datetime"
        return "string"


@dataclass
class ForecastRequest:
    """A checked forecasting request: each series' recent history (or None: the stored history, cut
    at ``origin`` when given), the known-ahead ``future`` values, the series asked for, the level.
    A scoring request's history stays the columns its validation cast (``ValidatedBatch.columns``,
    no DataFrame between: the engine reads them as they are); a batch job's is a DataFrame."""

    level: float = 0.9
    history: pd.DataFrame | Mapping | None = None
    future: pd.DataFrame | None = None
    future_batch: ValidatedBatch | None = None
    origin: pd.Timestamp | None = None
    series: list | None = None
    rows: int = 0


@dataclass
class ValidatedBatch:
    """Validated columns, in signature order: numpy float64 arrays (NaN for missing), bool arrays (or
    object arrays of True/False/NaN), object arrays of ``str`` with NaN for missing, or pandas
    datetime arrays."""

    n_rows: int
    columns: dict
    ignored: tuple[str, ...] = ()

    def to_frame(self, signature: Signature) -> pd.DataFrame:
        data = {}
        for spec in signature.columns:
            values = self.columns[spec.name]
            if spec.kind == "string":
                values = pd.array(values, dtype=spec.dtype)
            elif values.dtype == object:  # keep object (booleans with NaN): pandas would infer
                values = pd.array(values, dtype=object)
            data[spec.name] = values
        return pd.DataFrame(data, copy=False)


class Signature:
    """A checked, compiled signature: build once per model version and reuse on every request."""

    def __init__(self, data: Mapping):
        if not isinstance(data, Mapping) or not isinstance(data.get("columns"), list) or not data["columns"]:
            raise ValueError("a signature is an object with a non-empty list of columns")
        if data.get("version", SIGNATURE_VERSION) != SIGNATURE_VERSION:
            raise ValueError(f"unknown signature version {data.get('version')!r}")
        specs = []
        for position, item in enumerate(data["columns"], 1):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
                raise ValueError(f"signature column {position} has no name")
            if item.get("type") not in SEMANTIC_TYPES:
                raise ValueError(f"signature column {item['name']!r} has an unknown type {item.get('type')!r}")
            dtype = item.get("dtype")
            if dtype not in ("float64", "bool", "str", "object") and not (
                isinstance(dtype, str) and dtype.startswith("datetime64[")
            ):
                raise ValueError(f"signature column {item['name']!r} has an unsupported dtype {dtype!r}")
            categories = item.get("categories")
            specs.append(
                ColumnSpec(
                    name=item["name"],
                    type=item["type"],
                    dtype=dtype,
                    nullable=bool(item.get("nullable", True)),
                    required=bool(item.get("required", True)),
                    categories=tuple(categories) if isinstance(categories, list) else None,
                )
            )
        self.columns: tuple[ColumnSpec, ...] = tuple(specs)
        self.names: tuple[str, ...] = tuple(s.name for s in specs)
        if len(set(self.names)) != len(self.names):
            raise ValueError("signature column names must be unique")
        self.by_name = {s.name: s for s in specs}
        self.target = data.get("target")
        self.task = data.get("task") or CLASSIFICATION
        if self.task not in TASKS:
            raise ValueError(f"unknown signature task {self.task!r}")
        self.classes = list(data["classes"]) if isinstance(data.get("classes"), list) else None
        if self.task in (REGRESSION, FORECASTING):
            self.classes = []
        self.data = dict(data)
        self._casters = {s.name: _CASTERS[s.kind] for s in specs}
        self._number_names = tuple(s.name for s in specs if s.kind == "number")
        self.forecast: dict | None = None
        if self.task == FORECASTING:
            self._compile_forecast(data.get("forecast"))

    def _compile_forecast(self, forecast) -> None:
        if not isinstance(forecast, Mapping) or any(k not in forecast for k in FORECAST_KEYS):
            raise ValueError(f"a forecasting signature needs a forecast object with {', '.join(FORECAST_KEYS)}")
        self.forecast = dict(forecast)
        keys = [forecast["time_column"], *forecast["series_columns"]]
        if any(name not in self.by_name for name in [*keys, forecast["target_column"], *forecast["known_ahead"]]):
            raise ValueError("a forecasting signature's time, series, target and known-ahead columns are its columns")

        def part(required: set, names: list) -> Signature:
            columns = [{**self.data["columns"][self.names.index(n)], "required": n in required} for n in names]
            return Signature({"version": SIGNATURE_VERSION, "columns": columns, "classes": []})

        # a history row: time, series and target (known-ahead values optional); a future row: no target
        self.history_signature = part(
            {*keys, forecast["target_column"]}, [*keys, forecast["target_column"], *forecast["known_ahead"]]
        )
        self.future_signature = part({*keys, *forecast["known_ahead"]}, [*keys, *forecast["known_ahead"]])

    def validate_forecast(self, payload, *, max_rows: int = MAX_ROWS) -> ForecastRequest:
        """Check a forecasting request (``{"history": rows, "future": rows, "level": 0.9}``,
        ``{"origin": time, "series": [keys]}`` or ``{}``); raises ``PayloadError`` naming the field."""
        if self.forecast is None:
            raise PayloadError("This model does not forecast.", code="invalid_payload")
        if not isinstance(payload, Mapping):
            raise PayloadError(
                'A forecasting request is a JSON object: {"history": [rows]}, {"origin": "2024-01-01"} or {}.',
                code="invalid_payload",
            )
        unknown = [k for k in payload if k not in FORECAST_REQUEST_KEYS]
        if unknown:
            raise PayloadError(
                f"Unknown field {unknown[0]!r}: a forecasting request has {', '.join(FORECAST_REQUEST_KEYS)}.",
                field=str(unknown[0]),
                code="unknown_field",
            )
        level = payload.get("level", 0.9)
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.5 <= level <= 0.99:
            raise PayloadError("The level is a number from 0.5 to 0.99 (e.g. 0.9).", field="level")
        request = ForecastRequest(level=float(level))
        if payload.get("history") is not None:
            if payload.get("origin") is not None:
                raise PayloadError("Send either a history or an origin, not both.", field="origin")
            batch = self._forecast_batch(self.history_signature, payload["history"], "history", max_rows)
            request.history, request.rows = batch.columns, batch.n_rows
        if payload.get("future") is not None:
            batch = self._forecast_batch(self.future_signature, payload["future"], "future", max_rows)
            request.future, request.future_batch = batch.to_frame(self.future_signature), batch
        if payload.get("origin") is not None:
            origin = payload["origin"]
            parsed = pd.to_datetime(origin, errors="coerce") if isinstance(origin, str) else pd.NaT
            if pd.isna(parsed):
                raise PayloadError(
                    f'The origin {origin!r} is not a date: send ISO 8601 text, e.g. "2024-05-01".', field="origin"
                )
            request.origin = parsed.tz_localize(None) if parsed.tzinfo is not None else parsed
        if payload.get("series") is not None:
            request.series = self._series_keys(payload["series"])
        return request

    def _forecast_batch(self, signature: Signature, rows, field: str, max_rows: int) -> ValidatedBatch:
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise PayloadError(f"The {field} is a list of row objects.", field=field)
        if not rows:
            raise PayloadError(f"The {field} has no rows.", field=field)
        try:
            return signature.validate_columns(rows, max_rows=max_rows)
        except PayloadError as exc:  # the column at fault, or the list itself when it is too long
            at_fault = field if exc.code == "too_many_rows" else exc.field
            raise PayloadError(f"{field}: {exc.message}", field=at_fault, row=exc.row, code=exc.code) from None

    def _series_keys(self, keys) -> list[dict]:
        columns = self.forecast["series_columns"]
        if not isinstance(keys, list) or not all(isinstance(k, Mapping) for k in keys):
            raise PayloadError("The series are a list of objects naming each series, e.g. [{...}].", field="series")
        chosen = []
        for position, key in enumerate(keys, 1):
            missing = [c for c in columns if c not in key]
            if missing:
                raise PayloadError(f"Series {position} has no value for {missing[0]!r}.", field="series")
            # the engine names series with the same rule, so {"store": 1.0} is the series "1"
            chosen.append({c: None if key[c] is None else _label(key[c]) for c in columns})
        return chosen

    def to_json(self) -> dict:
        return self.data

    # -- payloads
    def validate(self, payload, *, max_rows: int = MAX_ROWS, unknown_columns: str = "ignore") -> pd.DataFrame:
        """``validate_payload`` for this signature."""
        return self.validate_columns(payload, max_rows=max_rows, unknown_columns=unknown_columns).to_frame(self)

    def validate_columns(self, payload, *, max_rows: int = MAX_ROWS, unknown_columns: str = "ignore") -> ValidatedBatch:
        """Check a JSON payload and cast it column by column (no DataFrame: the ONNX fast path)."""
        if unknown_columns not in ("ignore", "error"):
            raise ValueError("unknown_columns must be 'ignore' or 'error'")
        n_rows, raw, keys = _read_payload(payload, self.by_name, max_rows)
        unknown = tuple(k for k in keys if k not in self.by_name)
        if unknown and unknown_columns == "error":
            shown = ", ".join(repr(k) for k in unknown[:10])
            raise PayloadError(
                f"Unknown column{'s' if len(unknown) > 1 else ''} {shown}: the model's columns are "
                f"{_names_hint(self.names)}.",
                field=unknown[0],
                code="unknown_column",
            )
        columns = {}
        numbers = self._numbers_at_once(raw)
        for spec in self.columns:
            if spec.name in numbers:
                columns[spec.name] = numbers[spec.name]
                continue
            values = raw(spec.name)
            if values is None:  # the key is absent from every row
                if spec.required:
                    raise PayloadError(
                        _missing_message(spec.name, unknown, n_rows), field=spec.name, code="missing_column"
                    )
                values = [None] * n_rows
            elif isinstance(values, tuple):  # (values, first row without the key)
                values, row = values
                if spec.required:
                    raise PayloadError(
                        f"Row {row} has no value for column {spec.name!r} (send null for a missing value).",
                        field=spec.name,
                        row=row,
                        code="missing_column",
                    )
                values = [None if v is _ABSENT else v for v in values]
            columns[spec.name] = self._casters[spec.name](spec, values, 0)
        return ValidatedBatch(n_rows=n_rows, columns=columns, ignored=unknown)

    def _numbers_at_once(self, raw) -> dict[str, np.ndarray]:
        """The number columns cast in one array, when each was sent in every row as JSON numbers
        or nulls (the usual request): one conversion, not one per column (a 1-row request with 30
        number columns: 0.20 → 0.07 ms). Otherwise {}: the columns are cast one by one, which
        finds and words any error."""
        if len(self._number_names) < 2:
            return {}
        block = [raw(name) for name in self._number_names]
        if any(type(values) is not list for values in block):  # absent from some or every row
            return {}
        if not set(map(type, chain.from_iterable(block))) <= _NUMBER_TYPES:
            return {}
        try:
            array = np.array(block, dtype=np.float64)
        except OverflowError:
            return {}
        if np.isinf(array).any():
            return {}
        return dict(zip(self._number_names, array, strict=True))

    # -- DataFrames (batch scoring, verification)
    def validate_frame(self, frame: pd.DataFrame, *, row_offset: int = 0) -> ValidatedBatch:
        """Cast a DataFrame's columns with the same rules; row numbers in errors are offset by ``row_offset``."""
        if not isinstance(frame, pd.DataFrame):
            raise PayloadError("Expected a table of rows.", code="invalid_payload")
        n_rows = len(frame)
        present = set(frame.columns)
        unknown = tuple(str(c) for c in frame.columns if c not in self.by_name)
        columns = {}
        for spec in self.columns:
            if spec.name not in present:
                if spec.required:
                    raise PayloadError(
                        _missing_message(spec.name, unknown, n_rows), field=spec.name, code="missing_column"
                    )
                columns[spec.name] = _CASTERS[spec.kind](spec, [None] * n_rows, row_offset)
                continue
            columns[spec.name] = _cast_series(spec, frame[spec.name], row_offset)
        return ValidatedBatch(n_rows=n_rows, columns=columns, ignored=unknown)


def validate_payload(
    signature: Signature | Mapping, payload, *, max_rows: int = MAX_ROWS, unknown_columns: str = "ignore"
) -> pd.DataFrame:
    """Check a JSON payload (see the module docstring) and return it as a DataFrame with the
    signature's columns, in order, with the signature's dtypes; raises ``PayloadError``.

    Pass a ``Signature`` (compiled once) on hot paths; a plain dict is compiled on every call.
    """
    if not isinstance(signature, Signature):
        signature = Signature(signature)
    return signature.validate(payload, max_rows=max_rows, unknown_columns=unknown_columns)


def _names_hint(names) -> str:
    shown = ", ".join(repr(n) for n in names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def _missing_message(name: str, unknown: tuple, n_rows: int) -> str:
    where = "row 1" if n_rows == 1 else "every row"
    message = f"Column {name!r} is missing ({where})."
    if unknown:
        close = [u for u in unknown if u.strip().lower() == name.strip().lower()]
        shown = ", ".join(repr(u) for u in (close or list(unknown))[:10])
        message += f" Columns sent that the model does not know: {shown}."
    return message


# --- Reading the payload's shape -----------------------------------------------------------------
def _read_payload(payload, known: Mapping, max_rows: int):
    """(n_rows, get(name) -> values | None | (values, first_absent_row), keys sent)."""
    if isinstance(payload, dict) and len(payload) == 1:
        ((key, inner),) = payload.items()
        if key in ENVELOPE_KEYS and key not in known and isinstance(inner, (list, dict)):
            payload = inner
    if isinstance(payload, list):
        return _read_records(payload, max_rows)
    if not isinstance(payload, dict):
        raise PayloadError(
            'The body must be a JSON object or array of records, e.g. [{"column": value, ...}].',
            code="invalid_payload",
        )
    if not payload:
        raise PayloadError("The payload has no rows.", code="empty_payload")
    keys = set(payload)
    if {"columns", "data"} <= keys <= {"columns", "data", "index"} and not (keys & set(known)):
        return _read_split(payload, max_rows)
    values = list(payload.values())
    lists = [isinstance(v, list) for v in values]
    if all(lists):
        return _read_columnar(payload, max_rows)
    if any(lists):
        name = next(k for k, is_list in zip(payload, lists, strict=True) if is_list)
        scalar = next(k for k, is_list in zip(payload, lists, strict=True) if not is_list)
        raise PayloadError(
            f"Column {name!r} holds a list but {scalar!r} a single value: send one record with a value per "
            "column, or every column as a list of equal length.",
            field=name,
            code="invalid_payload",
        )
    return _read_records([payload], max_rows)


def _check_rows(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise PayloadError("The payload has no rows.", code="empty_payload")
    if n_rows > max_rows:
        raise PayloadError(
            f"The payload has {n_rows} rows; at most {max_rows} are accepted per request.",
            code="too_many_rows",
        )


def _read_records(records: list, max_rows: int):
    _check_rows(len(records), max_rows)
    if set(map(type, records)) != {dict}:
        row = next(i for i, r in enumerate(records, 1) if not isinstance(r, dict))
        raise PayloadError(
            f"Row {row} is not an object: each record must be a JSON object keyed by column name "
            '(to send arrays of values, use {"columns": [...], "data": [[...], ...]}).',
            row=row,
            code="invalid_payload",
        )
    n = len(records)
    if n == 1:
        keys = list(records[0])
        uniform = True
    else:
        union = set().union(*records)
        keys = list(records[0]) + sorted(union.difference(records[0]), key=str)
        uniform = set(map(len, records)) == {len(union)}  # every record has every key

    def get(name):
        if n == 1:
            record = records[0]
            return [record[name]] if name in record else None
        if uniform:
            return list(map(itemgetter(name), records)) if name in union else None
        values = [r.get(name, _ABSENT) for r in records]
        absent = values.count(_ABSENT)
        if absent == 0:
            return values
        if absent == n:
            return None
        return values, values.index(_ABSENT) + 1

    return n, get, keys


def _read_columnar(payload: dict, max_rows: int):
    lengths = {len(v) for v in payload.values()}
    if len(lengths) > 1:
        first = len(next(iter(payload.values())))
        name = next(k for k, v in payload.items() if len(v) != first)
        raise PayloadError(
            f"Column {name!r} has {len(payload[name])} values but the first column has {first}: every column "
            "must have one value per row.",
            field=name,
            code="invalid_payload",
        )
    _check_rows(lengths.pop(), max_rows)
    n = len(next(iter(payload.values())))
    return n, payload.get, list(payload)


def _read_split(payload: dict, max_rows: int):
    names, data = payload["columns"], payload["data"]
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        raise PayloadError('"columns" must be a list of column names.', field="columns", code="invalid_payload")
    if len(set(names)) != len(names):
        dup = next(c for i, c in enumerate(names) if c in names[:i])
        raise PayloadError(f'Column {dup!r} is named twice in "columns".', field=dup, code="invalid_payload")
    if not isinstance(data, list):
        raise PayloadError('"data" must be a list of rows.', field="data", code="invalid_payload")
    _check_rows(len(data), max_rows)
    width = len(names)
    if set(map(type, data)) != {list} or {len(r) for r in data} != {width}:
        row = next(i for i, r in enumerate(data, 1) if not isinstance(r, list) or len(r) != width)
        raise PayloadError(
            f'Row {row} of "data" must be a list of {width} values, one per column.', row=row, code="invalid_payload"
        )
    transposed = dict(zip(names, (list(col) for col in zip(*data, strict=True)), strict=True))
    return len(data), transposed.get, names


# --- Casting one column --------------------------------------------------------------------------
def _bad(spec: ColumnSpec, row: int, value, why: str, more: int, code: str = "invalid_value") -> PayloadError:
    shown = repr(value) if not isinstance(value, str) else f'"{value[:40]}"'
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif value is None:
        shown = "null"
    extra = f" ({more} more row{'s' if more > 1 else ''} in this column too)" if more else ""
    return PayloadError(f"Column {spec.name!r}, row {row}: {shown} {why}{extra}.", field=spec.name, row=row, code=code)


def _first_error(spec: ColumnSpec, values, errors: list, offset: int) -> PayloadError:
    """errors: [(index, why, code)], any order; reports the first row and how many more."""
    errors.sort(key=lambda e: e[0])
    index, why, code = errors[0]
    return _bad(spec, index + 1 + offset, values[index], why, len(errors) - 1, code)


def _nested_or_other(v) -> tuple[str, str]:
    if isinstance(v, _NESTED_TYPES):
        return "is a nested value; send a single value per cell", "nested_value"
    return f"has an unexpected type ({type(v).__name__})", "invalid_value"


_THOUSANDS_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


def _is_missing(v) -> bool:
    return v is None or isinstance(v, _MISSING_TYPES) or (isinstance(v, float) and v != v)


def _to_float(spec: ColumnSpec, values: list, offset: int) -> np.ndarray:
    """JSON numbers / numeric strings → float64 with NaN for missing; refuses anything else."""
    if set(map(type, values)) <= _NUMBER_TYPES:
        try:
            out = np.array(values, dtype=np.float64)
        except OverflowError:
            out = None
        if out is not None:
            infinite = np.isinf(out)
            if infinite.any():
                errors = [(int(i), "is not a finite number", "invalid_value") for i in np.flatnonzero(infinite)]
                raise _first_error(spec, values, errors, offset)
            return out
    out = np.empty(len(values), dtype=np.float64)
    errors = []
    for i, v in enumerate(values):
        t = type(v)
        if t is float or t is int:
            try:
                f = float(v)
            except OverflowError:
                errors.append((i, "is too large", "invalid_value"))
                continue
            if math.isinf(f):
                errors.append((i, "is not a finite number", "invalid_value"))
            out[i] = f
        elif t is str:
            s = v.strip()
            if not s or s.lower() in ("nan", "null", "none", "na", "n/a"):
                out[i] = np.nan
                continue
            try:
                f = float(s)
            except ValueError:
                if not _THOUSANDS_GROUPED.fullmatch(s):  # "1,234.50", as the training file wrote it
                    errors.append((i, "is not a number", "invalid_value"))
                    continue
                f = float(s.replace(",", ""))
            if math.isinf(f):
                errors.append((i, "is not a finite number", "invalid_value"))
            out[i] = f
        elif _is_missing(v):
            out[i] = np.nan
        elif t is bool or isinstance(v, (bool, np.bool_)):
            errors.append((i, "is a boolean, not a number", "invalid_value"))
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out[i] = float(v)
            if math.isinf(out[i]):
                errors.append((i, "is not a finite number", "invalid_value"))
        else:
            errors.append((i, *_nested_or_other(v)))
    if errors:
        raise _first_error(spec, values, errors, offset)
    return out


def _cast_number(spec: ColumnSpec, values: list, offset: int) -> np.ndarray:
    return _to_float(spec, values, offset)


def _whole(spec: ColumnSpec, values, floats: np.ndarray, offset: int) -> np.ndarray:
    missing = np.isnan(floats)
    filled = np.where(missing, 0.0, floats)
    fractional = filled != np.floor(filled)
    too_big = np.abs(filled) > 2**53
    if fractional.any() or too_big.any():
        errors = [
            (int(i), "is not a whole number (this column holds integers)", "invalid_value")
            for i in np.flatnonzero(fractional)
        ]
        errors += [(int(i), "is too large for an integer column", "invalid_value") for i in np.flatnonzero(too_big)]
        raise _first_error(spec, values, errors, offset)
    return floats


def _cast_integer(spec: ColumnSpec, values: list, offset: int):
    return _whole(spec, values, _to_float(spec, values, offset), offset)


def _booleans(spec: ColumnSpec, values: list, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing mask) for true/false, 1/0 and the words true/false/yes/no/y/n/t/f."""
    n = len(values)
    data = np.zeros(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    if set(map(type, values)) == {bool}:
        return np.array(values, dtype=bool), mask
    errors = []
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)):
            data[i] = bool(v)
        elif _is_missing(v):
            mask[i] = True
        elif isinstance(v, (int, float, np.integer, np.floating)):
            if v == 1 or v == 0:
                data[i] = v == 1
            else:
                errors.append((i, "is not a boolean (true/false, 1/0)", "invalid_value"))
        elif isinstance(v, str):
            word = v.strip().lower()
            if word in TRUE_WORDS:
                data[i] = True
            elif word in FALSE_WORDS:
                data[i] = False
            elif not word:
                mask[i] = True
            else:
                errors.append((i, "is not a boolean (true/false, yes/no, 1/0)", "invalid_value"))
        else:
            errors.append((i, *_nested_or_other(v)))
    if errors:
        raise _first_error(spec, values, errors, offset)
    return data, mask


def _boolean_array(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return data
    out = data.astype(object)
    out[mask] = np.nan
    return out


def _cast_boolean(spec: ColumnSpec, values: list, offset: int) -> np.ndarray:
    return _boolean_array(*_booleans(spec, values, offset))


def _cast_flag(spec: ColumnSpec, values: list, offset: int) -> np.ndarray:
    """A boolean held as 0/1 numbers: numbers as for numeric columns, plus true/false and the words."""
    if set(map(type, values)) <= _NUMBER_TYPES:
        return _to_float(spec, values, offset)
    data, mask = _booleans(spec, values, offset)
    out = data.astype(np.float64)
    out[mask] = np.nan
    return out


def _label(v) -> str:
    # the same rule as the featurizer's CastColumns: 3, 3.0 and "3" are one category. Pure (no
    # Django, no state): the forecasting engine names series keys with it too.
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)


def _cast_string(spec: ColumnSpec, values: list, offset: int) -> np.ndarray:
    """Labels and text → object array of str, with nan for missing."""
    blank_is_missing = spec.type != "text"
    if set(map(type, values)) == {str} and not (blank_is_missing and "" in values):
        return np.array(values, dtype=object)
    out = np.empty(len(values), dtype=object)
    errors = []
    for i, v in enumerate(values):
        if type(v) is str:
            out[i] = v if (v or not blank_is_missing) else np.nan
        elif _is_missing(v):
            out[i] = np.nan
        elif isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)):
            if isinstance(v, (float, np.floating)) and math.isinf(v):
                errors.append((i, "is not a finite number", "invalid_value"))
            out[i] = _label(v)
        else:
            errors.append((i, *_nested_or_other(v)))
    if errors:
        raise _first_error(spec, values, errors, offset)
    return out


@functools.lru_cache(maxsize=256)
def _datetime_target(spec: ColumnSpec):
    """A datetime column's dtype and zone (pandas' lookup of the dtype's name costs a request ~70 µs)."""
    dtype = pd.api.types.pandas_dtype(spec.dtype)
    return dtype, getattr(dtype, "tz", None)


# a date or a time without a zone, to the microsecond: numpy's parser reads it as pandas' does
_NAIVE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
_NANOSECOND_RANGE = (np.datetime64("1678-01-01", "us"), np.datetime64("2262-01-01", "us"))


def _naive_iso_at_once(texts: np.ndarray, dtype):
    """Texts that are all plain ISO 8601 dates or times, parsed in one numpy call (a tenth of
    pandas' mixed-format parse, which a forecasting request's history pays on every request);
    None for anything else, which the general path parses and words the errors of."""
    if not all(isinstance(t, str) and _NAIVE_ISO.fullmatch(t) for t in texts):
        return None
    try:
        parsed = np.array(texts.tolist(), dtype="datetime64[us]")
    except ValueError:  # a day or an hour out of range
        return None
    if len(parsed) and (parsed.min() < _NANOSECOND_RANGE[0] or parsed.max() >= _NANOSECOND_RANGE[1]):
        return None  # past what every unit holds: the general path decides
    return pd.array(parsed.astype(dtype))


def _cast_datetime(spec: ColumnSpec, values: list, offset: int):
    dtype, tz = _datetime_target(spec)
    n = len(values)
    texts = np.empty(n, dtype=object)
    errors = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            texts[i] = v.strip() or None
        elif _is_missing(v):
            texts[i] = None
        elif isinstance(v, (pd.Timestamp, np.datetime64)):
            texts[i] = v
        elif isinstance(v, dt.date):  # date and datetime objects: what Parquet dates read back as
            texts[i] = v.isoformat()
        elif isinstance(v, _NESTED_TYPES):
            errors.append((i, *_nested_or_other(v)))
        else:
            errors.append(
                (i, 'is not a date: send dates as ISO 8601 text, e.g. "2024-05-01T13:30:00"', "invalid_value")
            )
    if errors:
        raise _first_error(spec, values, errors, offset)
    if tz is None:
        at_once = _naive_iso_at_once(texts, dtype)
        if at_once is not None:
            return at_once
    parsed = pd.to_datetime(pd.Series(texts, dtype=object), errors="coerce", utc=True, format="mixed")
    failed = parsed.isna().to_numpy() & pd.notna(texts)
    if failed.any():
        errors = [
            (int(i), 'is not a date (use ISO 8601, e.g. "2024-05-01T13:30:00")', "invalid_value")
            for i in np.flatnonzero(failed)
        ]
        raise _first_error(spec, values, errors, offset)
    if tz is None:
        parsed = parsed.dt.tz_localize(None)
    else:
        parsed = parsed.dt.tz_convert(tz)
    try:
        return parsed.astype(dtype).array
    except pd.errors.OutOfBoundsDatetime:  # a signature in nanoseconds holds 1677 to 2262 only
        wall = parsed if tz is None else parsed.dt.tz_localize(None)
        outside = np.flatnonzero(((wall < pd.Timestamp.min) | (wall > pd.Timestamp.max)).to_numpy())
        errors = [(int(i), "is outside the dates this model takes (1677 to 2262)", "invalid_value") for i in outside]
        raise _first_error(spec, values, errors, offset) from None


_CASTERS = {
    "number": _cast_number,
    "integer": _cast_integer,
    "flag": _cast_flag,
    "boolean": _cast_boolean,
    "string": _cast_string,
    "datetime": _cast_datetime,
}


def _cast_series(spec: ColumnSpec, series: pd.Series, offset: int):
    """Vectorised casts for columns that already have a fitting dtype; others go value by value."""
    dtype = series.dtype
    kind = spec.kind
    is_bool = pd.api.types.is_bool_dtype(dtype)
    numeric = pd.api.types.is_numeric_dtype(dtype) and not is_bool
    if kind in ("number", "integer", "flag") and numeric:
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(floats).any():
            errors = [(int(i), "is not a finite number", "invalid_value") for i in np.flatnonzero(np.isinf(floats))]
            raise _first_error(spec, series.tolist(), errors, offset)
        if kind != "integer":
            return floats
        return _whole(spec, _LazyList(series), floats, offset)
    if kind == "boolean" and is_bool:
        if isinstance(dtype, pd.BooleanDtype):
            return _boolean_array(series.to_numpy(dtype=bool, na_value=False), series.isna().to_numpy())
        return series.to_numpy(dtype=bool)
    if kind == "flag" and is_bool:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "string" and isinstance(dtype, pd.StringDtype):
        values = series.to_numpy(dtype=object, na_value=np.nan)
        if spec.type == "text" or not (values == "").any():
            return values
    if kind == "datetime" and (pd.api.types.is_datetime64_any_dtype(dtype)):
        target, tz = _datetime_target(spec)
        values = series
        if getattr(dtype, "tz", None) is not None and tz is None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif getattr(dtype, "tz", None) is None and tz is not None:
            values = values.dt.tz_localize("UTC").dt.tz_convert(tz)
        return values.astype(target).array
    return _CASTERS[kind](spec, series.tolist(), offset)


class _LazyList:
    """Index access to a Series' values for error messages without converting the whole column."""

    def __init__(self, series: pd.Series):
        self.series = series

    def __getitem__(self, i):
        return self.series.iloc[i]
