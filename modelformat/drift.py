"""Data drift (population stability index) and data-quality counters for scoring inputs.

A *reference profile* is computed once from the training data and stored with the model version;
a monitoring buffer then keeps *counts* — numbers per bin, per column — and adds each batch of
scoring inputs to them (``count_batch`` + ``merge_counts``), so nothing but integers is kept and
updates are cheap. ``drift_report`` turns counts into PSI values and statuses. All JSON.

Reference profile (``reference_profile``)::

    {"version": 1, "rows": 20000,
     "columns": {
        "age":  {"kind": "numeric", "edges": [23.0, 29.0, ...], "expected": [0.1, ..., 0.02],
                 "min": 18.0, "max": 90.0, "missing": 0.02},
        "plan": {"kind": "categorical", "categories": ["basic", "pro", ...], "expected": [...],
                 "missing": 0.0},
        "note": {"kind": "unmonitored", "reason": "text"}}}

Numeric (and integer, 0/1 boolean and datetime — as epoch seconds) columns: up to ``BINS`` bins
between training quantiles (ties merged), right-closed, the outer bins open-ended. Label columns
(categorical, boolean): the ``TOP_CATEGORIES`` most frequent values, then one bin for every other
value (rare in training or never seen). Every column has a last bin for missing values, so a
column that suddenly arrives empty drifts too. ``expected`` lists the training share of each bin,
missing last; it sums to 1. Text and identifier columns are not monitored.

PSI = Σ (actual − expected) · ln(actual / expected) over the bins, shares clipped at ``EPSILON``.
Statuses (the usual credit-scoring bands): PSI < 0.1 **Passed** (no meaningful shift), 0.1 ≤ PSI <
0.25 **Warning** (moderate shift, watch it), PSI ≥ 0.25 **Alerted** (major shift: investigate,
retrain). Below ``MIN_ROWS`` scored rows the status is **Insufficient data**: PSI of a small sample
is biased upwards (about (bins − 1) / rows even with no drift).

Counts (``count_batch``; add with ``merge_counts``)::

    {"rows": 120, "bins": {"age": [12, 9, ..., 1], ...},
     "nulls": {"age": 1, ...}, "out_of_range": {"age": 0, ...}, "unseen": {"plan": 2, ...},
     "refused": 0, "type_errors": {"age": 3}}

``out_of_range`` counts numbers below the training minimum or above its maximum; ``unseen``
counts labels outside the signature's training categories; ``refused`` / ``type_errors`` count
payloads refused by validation (``count_refusal``), by the column at fault.

A regression's profile also has ``"prediction"`` (``prediction_profile``: the training target's
bins, as a numeric column's), and its counts a ``"prediction"`` list of served predictions per bin
(``count_predictions``): ``prediction_drift`` is the PSI of what the model predicts against what it
was trained on — the shift that matters even when each input drifts only a little.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .signature import Signature

PROFILE_VERSION = 1
BINS = 10
TOP_CATEGORIES = 20
EPSILON = 1e-4
PSI_WARNING = 0.1
PSI_ALERT = 0.25
MIN_ROWS = 100
PASSED, WARNING, ALERTED, INSUFFICIENT = "Passed", "Warning", "Alerted", "Insufficient data"
SEVERITY = (INSUFFICIENT, PASSED, WARNING, ALERTED)  # least to most worrying


def worst_status(statuses) -> str:
    """The most worrying of drift statuses (Insufficient data never outranks a report that says more)."""
    return max(statuses, key=SEVERITY.index)


def _kind(spec) -> str:
    """numeric (numbers, integers, datetimes), categorical (labels, booleans) or unmonitored."""
    if spec.type in ("text", "identifier"):
        return "unmonitored"
    if spec.kind in ("number", "integer", "datetime"):
        return "numeric"
    return "categorical"


def _as_numbers(values) -> np.ndarray:
    """float64 values (datetimes as epoch seconds), NaN for missing."""
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, (pd.arrays.DatetimeArray,)) or (
        isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64)
    ):
        stamps = pd.DatetimeIndex(values)
        if stamps.tz is not None:
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        seconds = stamps.asi8.astype(np.float64) / _ticks_per_second(stamps)
        seconds[stamps.isna()] = np.nan
        return seconds
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(np.float64)


def _ticks_per_second(stamps: pd.DatetimeIndex) -> float:
    unit = np.datetime_data(stamps.dtype)[0] if stamps.dtype.kind == "M" else "ns"
    return {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}.get(unit, 1e9)


def _as_labels(values) -> np.ndarray:
    """Object array of labels as strings (True → "True", 3.0 → "3"), NaN/None for missing."""
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object)
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return np.where(values, "True", "False").astype(object)
    values = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values  # validated label columns: str, NaN for missing
    out = np.empty(len(values), dtype=object)
    missing = pd.isna(values)
    for i, v in enumerate(values):
        if missing[i]:
            out[i] = None
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out[i] = str(int(v))
        elif isinstance(v, (bool, np.bool_)):
            out[i] = str(bool(v))
        else:
            out[i] = str(v)
    return out


def reference_profile(X_train: pd.DataFrame, signature, *, bins: int = BINS, top: int = TOP_CATEGORIES) -> dict:
    """The drift reference of every signature column, from the training frame (see module doc)."""
    signature = signature if isinstance(signature, Signature) else Signature(signature)
    batch = signature.validate_frame(X_train)
    n = batch.n_rows
    columns = {}
    for spec in signature.columns:
        kind = _kind(spec)
        if kind == "unmonitored":
            columns[spec.name] = {"kind": "unmonitored", "reason": spec.type}
            continue
        raw = batch.columns[spec.name]
        if kind == "numeric":
            values = _as_numbers(raw)
            present = values[~np.isnan(values)]
            if len(present) == 0:
                columns[spec.name] = {"kind": "unmonitored", "reason": "no values in training"}
                continue
            quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
            edges = np.unique(quantiles)
            profile = {
                "kind": "numeric",
                "edges": [float(e) for e in edges],
                "min": float(present.min()),
                "max": float(present.max()),
            }
        else:
            labels = _as_labels(raw)
            present = pd.Series(labels[~pd.isna(labels)], dtype=object)
            counts = present.value_counts()
            categories = sorted(counts.index[:top].tolist(), key=str)
            profile = {"kind": "categorical", "categories": [str(c) for c in categories]}
        bin_counts = _bin_counts(profile, raw)
        profile["expected"] = [round(c / n, 8) for c in bin_counts] if n else []
        profile["missing"] = round(bin_counts[-1] / n, 8) if n else 0.0
        columns[spec.name] = profile
    return {"version": PROFILE_VERSION, "rows": n, "columns": columns}


def prediction_profile(y_train, *, bins: int = BINS) -> dict | None:
    """The reference of a regression's predictions: the training target's distribution, binned as
    a numeric column (``reference_profile["prediction"]``); None without numbers."""
    values = _as_numbers(y_train)
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return None
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    profile = {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "min": float(present.min()),
        "max": float(present.max()),
    }
    counts = _bin_counts(profile, values)
    profile["expected"] = [round(c / len(values), 8) for c in counts]
    profile["missing"] = round(counts[-1] / len(values), 8)
    return profile


def count_predictions(profile: Mapping, predictions) -> dict:
    """Counts of served predictions in the prediction profile's bins (regression), as
    ``{"prediction": [..]}`` to merge into a batch's counts."""
    return {"prediction": _bin_counts(profile, np.asarray(predictions, dtype=np.float64))}


def prediction_drift(profile: Mapping | None, counts: Mapping) -> dict | None:
    """PSI of served predictions against the training target (regression), with the statuses of
    input drift: ``{"rows", "psi", "status", "edges", "expected", "observed"}`` (the bins' upper
    edges, the training shares and the served shares, missing last); None for a model without a
    prediction profile."""
    reference = (profile or {}).get("prediction")
    if not reference:
        return None
    observed = list(counts.get("prediction") or [])
    rows = int(sum(observed))
    bins = {"edges": reference["edges"], "expected": reference["expected"]}
    if not rows or len(observed) != len(reference["expected"]):
        return {"rows": rows, "psi": None, "status": INSUFFICIENT, **bins, "observed": []}
    value = psi_from_counts(reference["expected"], observed)
    shares = [round(c / rows, 6) for c in observed]
    return {"rows": rows, "psi": round(value, 6), "status": psi_status(value, rows), **bins, "observed": shares}


def _bin_counts(column_profile: Mapping, values) -> list[int]:
    """Counts per bin (values bins, then missing) of one column's values."""
    if column_profile["kind"] == "numeric":
        return _numeric_bins(column_profile, _as_numbers(values))
    labels = _as_labels(values)
    missing = pd.isna(labels)
    categories = column_profile["categories"]
    codes = _label_codes(labels[~missing], categories)
    counts = np.bincount(codes, minlength=len(categories) + 1)
    return [int(c) for c in counts] + [int(missing.sum())]


def _numeric_bins(column_profile: Mapping, numbers: np.ndarray) -> list[int]:
    missing = np.isnan(numbers)
    edges = column_profile["edges"]
    index = np.searchsorted(edges, numbers[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [int(c) for c in counts] + [int(missing.sum())]


# Below this many labels a dict lookup beats building a pandas Index (~0.1 ms a column): a
# scoring request's sample is usually a row or a few, and it is counted on the request's thread.
_SMALL_BATCH = 64


def _label_codes(labels: np.ndarray, categories: list) -> np.ndarray:
    """The position of each (present) label in ``categories``; ``len(categories)`` for any other."""
    other = len(categories)
    if len(labels) <= _SMALL_BATCH:
        position = {c: i for i, c in enumerate(categories)}
        return np.fromiter((position.get(v, other) for v in labels), dtype=np.intp, count=len(labels))
    codes = pd.Index(categories, dtype=object).get_indexer(labels)
    return np.where(codes < 0, other, codes)


def psi_from_counts(expected: list[float], counts: list[int]) -> float:
    """PSI of observed bin counts against expected shares (both with the missing bin last)."""
    total = sum(counts)
    if total == 0:
        return 0.0
    value = 0.0
    for e, c in zip(expected, counts, strict=True):
        a = c / total
        if a == 0 and e == 0:
            continue
        a, e = max(a, EPSILON), max(e, EPSILON)
        value += (a - e) * math.log(a / e)
    return float(value)


def psi(reference_column_profile: Mapping, values) -> float:
    """PSI of a sample of one column's scoring inputs against its reference profile."""
    if reference_column_profile.get("kind") == "unmonitored":
        return 0.0
    return psi_from_counts(reference_column_profile["expected"], _bin_counts(reference_column_profile, values))


def psi_status(value: float | None, rows: int | None = None) -> str:
    """Passed (< 0.1), Warning (0.1–0.25), Alerted (≥ 0.25); Insufficient data below MIN_ROWS rows."""
    if value is None or (rows is not None and rows < MIN_ROWS):
        return INSUFFICIENT
    if value >= PSI_ALERT:
        return ALERTED
    if value >= PSI_WARNING:
        return WARNING
    return PASSED


# --- Incremental counters ------------------------------------------------------------------------
def empty_counts(profile: Mapping) -> dict:
    columns = profile["columns"]
    monitored = [name for name, p in columns.items() if p["kind"] != "unmonitored"]
    return {
        "rows": 0,
        "bins": {name: [0] * len(columns[name]["expected"]) for name in monitored},
        "nulls": {name: 0 for name in columns},
        "out_of_range": {name: 0 for name in monitored if columns[name]["kind"] == "numeric"},
        "unseen": {},
        "refused": 0,
        "type_errors": {},
    }


def count_batch(profile: Mapping, columns, signature=None) -> dict:
    """Counts for one batch of validated inputs: a DataFrame or ``ValidatedBatch.columns``.

    With the signature, ``unseen`` counts labels outside the training categories it lists.
    """
    if isinstance(columns, pd.DataFrame):
        columns = {name: columns[name] for name in columns.columns}
    signature = signature if (signature is None or isinstance(signature, Signature)) else Signature(signature)
    counts = empty_counts(profile)
    rows = None
    for name, column_profile in profile["columns"].items():
        if name not in columns:
            continue
        values = columns[name]
        rows = len(values) if rows is None else rows
        if column_profile["kind"] == "unmonitored":
            counts["nulls"][name] = int(pd.isna(np.asarray(values, dtype=object)).sum())
            continue
        if column_profile["kind"] == "numeric":
            numbers = _as_numbers(values)
            bins = _numeric_bins(column_profile, numbers)
            with np.errstate(invalid="ignore"):
                outside = (numbers < column_profile["min"]) | (numbers > column_profile["max"])
            counts["out_of_range"][name] = int(outside.sum())
        else:
            labels = _as_labels(values)
            present = labels[~pd.isna(labels)]
            categories = column_profile["categories"]
            bins = np.bincount(_label_codes(present, categories), minlength=len(categories) + 1).tolist()
            bins.append(len(labels) - len(present))
            spec = signature.by_name.get(name) if signature is not None else None
            if spec is not None and spec.categories is not None:
                known = [str(c) for c in spec.categories]
                counts["unseen"][name] = int(np.count_nonzero(_label_codes(present, known) == len(known)))
        counts["bins"][name] = bins
        counts["nulls"][name] = bins[-1]
    counts["rows"] = int(rows or 0)
    return counts


def concat_columns(batches: list) -> dict:
    """One batch of columns from several (``ValidatedBatch.columns`` of the same signature), to
    count many small requests in one ``count_batch``."""
    if len(batches) == 1:
        return batches[0]
    out = {}
    for name in batches[0]:
        parts = [batch[name] for batch in batches]
        if all(isinstance(part, np.ndarray) for part in parts):
            out[name] = np.concatenate(parts)
        else:  # pandas extension arrays (datetimes)
            out[name] = pd.concat([pd.Series(part) for part in parts], ignore_index=True).array
    return out


def count_refusal(error) -> dict:
    """Counts for a payload refused by validation (a ``PayloadError``), by the column at fault."""
    field = getattr(error, "field", None)
    code = getattr(error, "code", None)
    type_errors = {field: 1} if field and code in ("invalid_value", "nested_value") else {}
    return {
        "rows": 0,
        "bins": {},
        "nulls": {},
        "out_of_range": {},
        "unseen": {},
        "refused": 1,
        "type_errors": type_errors,
    }


def merge_counts(total: Mapping, more: Mapping) -> dict:
    """``total`` + ``more`` (a new dict; bins are added element-wise)."""
    out = {
        "rows": int(total.get("rows", 0)) + int(more.get("rows", 0)),
        "refused": int(total.get("refused", 0)) + int(more.get("refused", 0)),
    }
    bins = {k: list(v) for k, v in total.get("bins", {}).items()}
    for name, values in more.get("bins", {}).items():
        if name in bins and len(bins[name]) == len(values):
            bins[name] = [a + b for a, b in zip(bins[name], values, strict=True)]
        else:
            bins[name] = list(values)
    out["bins"] = bins
    prediction = list(total.get("prediction") or [])
    more_prediction = list(more.get("prediction") or [])
    if prediction and len(prediction) == len(more_prediction):
        prediction = [a + b for a, b in zip(prediction, more_prediction, strict=True)]
    elif more_prediction:
        prediction = more_prediction
    if prediction:
        out["prediction"] = prediction
    for key in ("nulls", "out_of_range", "unseen", "type_errors"):
        merged = dict(total.get(key, {}))
        for name, value in more.get(key, {}).items():
            merged[name] = int(merged.get(name, 0)) + int(value)
        out[key] = merged
    return out


def drift_report(profile: Mapping, counts: Mapping) -> dict:
    """PSI and status per monitored column, and the worst status overall::

    {"rows": 5000, "status": "Warning",
     "columns": {"age": {"psi": 0.13, "status": "Warning"}, ...}}
    """
    rows = int(counts.get("rows", 0))
    columns = {}
    for name, column_profile in profile["columns"].items():
        if column_profile["kind"] == "unmonitored":
            continue
        observed = counts.get("bins", {}).get(name)
        if not observed or sum(observed) == 0:
            columns[name] = {"psi": None, "status": INSUFFICIENT}
            continue
        value = psi_from_counts(column_profile["expected"], observed)
        status = psi_status(value, rows)
        columns[name] = {"psi": round(value, 6), "status": status}
    worst = worst_status([PASSED, *(c["status"] for c in columns.values())])
    overall = INSUFFICIENT if rows < MIN_ROWS else worst
    return {"rows": rows, "status": overall, "columns": columns}
