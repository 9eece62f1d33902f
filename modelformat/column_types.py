"""Semantic column types: what a column holds, guessed from its dtype and values.

Part of the model-file format: a signature records each column's semantic type, and
``signature.build_signature`` guesses it with ``infer_column_type`` when the caller gives none.
Training plans its features from the same guess (``training/ml/columns.py``), so it lives here,
below both training and serving.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

SEMANTIC_TYPES = ("numeric", "integer", "boolean", "categorical", "datetime", "text", "identifier")
ONEHOT_MAX_CATEGORIES = 12  # above this a categorical column is high-cardinality
_BOOL_WORDS = {"true", "false", "yes", "no", "y", "n", "t", "f"}
_ID_NAME = re.compile(r"(^|[_\s-])(id|key|uuid|guid)$|^(id|uuid|guid)([_\s-]|$)", re.IGNORECASE)
_SAMPLE = 2000


def _sample(values: pd.Series) -> pd.Series:
    return values if len(values) <= _SAMPLE else values.sample(_SAMPLE, random_state=0)


def infer_column_type(name: str, col: pd.Series) -> str:
    """Guess the semantic type of one column from its dtype and values."""
    values = col.dropna()
    n = len(values)
    if pd.api.types.is_bool_dtype(col):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "datetime"
    if n == 0:
        return "numeric" if pd.api.types.is_numeric_dtype(col) else "categorical"
    if pd.api.types.is_numeric_dtype(col):
        uniq = values.nunique()
        if uniq <= 2 and set(np.unique(values.to_numpy())) <= {0, 1}:
            return "boolean"
        integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        # a unique integer column is an id when it is named like one or is a row number (1, 2, 3, ...)
        row_number = values.is_monotonic_increasing and values.max() - values.min() == n - 1
        if integral and uniq == n and n >= 50 and (_ID_NAME.search(name) or row_number):
            return "identifier"
        return "integer" if integral else "numeric"
    strings = _sample(values).astype(str)
    uniq = values.astype(str).nunique()
    if uniq <= 2 and set(strings.str.lower().unique()) <= _BOOL_WORDS:
        return "boolean"
    filled = strings[strings.str.strip() != ""]  # blanks are missing values, not words
    if len(filled) and pd.to_numeric(filled, errors="coerce").notna().mean() >= 0.95 and uniq > ONEHOT_MAX_CATEGORIES:
        return "numeric"
    if strings.str.contains(r"\d").mean() >= 0.9 and strings.str.contains(r"[-/:]").mean() >= 0.9:
        parsed = pd.to_datetime(strings, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.9:
            return "datetime"
    tokens = strings.str.split().str.len().mean()
    if tokens >= 4 and uniq / n >= 0.3:
        return "text"
    if n >= 50 and uniq / n >= 0.95:
        return "identifier"
    return "categorical"
