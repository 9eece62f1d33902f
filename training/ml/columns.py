"""Column semantic types and the featurization plan (what happens to each raw column).

The plan is plain JSON, computed once from the training data before the search starts, and
carried inside every trial spec so that a worker on another machine rebuilds exactly the same
featurizer. Shape::

    {"columns": [{"name": "age", "type": "numeric", "dtype": "float64", "missing_fraction": 0.2,
                  "n_unique": 88, "dropped": null, "impute": "median", "high_cardinality": false,
                  "cast": false}, ...]}

``dropped`` is null for a feature, or the reason the column is not used ("excluded", "identifier",
"constant", "all_missing", "leak").
"""

from __future__ import annotations

import pandas as pd

from modelformat.column_types import ONEHOT_MAX_CATEGORIES, SEMANTIC_TYPES, infer_column_type

IMPUTE_STRATEGIES = ("median", "mean", "most_frequent", "constant", "category")


def infer_column_types(X: pd.DataFrame) -> dict[str, str]:
    """Semantic type of every column: numeric, integer, boolean, categorical, datetime, text, identifier."""
    return {name: infer_column_type(name, X[name]) for name in X.columns}


def check_overrides(overrides: dict | None, columns) -> dict:
    """Validate per-column overrides ``{name: {"type"?, "impute"?, "exclude"?}}``; raises ValueError."""
    overrides = overrides or {}
    known = set(columns)
    for name, override in overrides.items():
        if name not in known:
            raise ValueError(f"column override for unknown column {name!r}")
        extra = set(override) - {"type", "impute", "exclude"}
        if extra:
            raise ValueError(f"column {name!r}: unknown override keys {sorted(extra)}")
        if "type" in override and override["type"] not in SEMANTIC_TYPES:
            raise ValueError(f"column {name!r}: type must be one of {SEMANTIC_TYPES}")
        if "impute" in override and override["impute"] not in IMPUTE_STRATEGIES:
            raise ValueError(f"column {name!r}: impute must be one of {IMPUTE_STRATEGIES}")
        if "exclude" in override and not isinstance(override["exclude"], bool):
            raise ValueError(f"column {name!r}: exclude must be true or false")
    return overrides


def _default_impute(kind: str) -> str:
    return {"boolean": "most_frequent", "categorical": "category", "text": "constant"}.get(kind, "median")


def plan_features(X: pd.DataFrame, column_types: dict | None = None, overrides: dict | None = None) -> dict:
    """The featurization plan for a training frame (see the module docstring for its shape)."""
    bad = [c for c in X.columns if not isinstance(c, str)]
    if bad:
        raise ValueError(f"column names must be strings; got {bad[:5]}")
    overrides = check_overrides(overrides, X.columns)
    given = dict(column_types or {})
    unknown = [c for c, t in given.items() if c not in X.columns or t not in SEMANTIC_TYPES]
    if unknown:
        raise ValueError(f"column_types has unknown columns or types: {unknown[:5]}")
    columns = []
    n = len(X)
    for name in X.columns:
        col = X[name]
        override = overrides.get(name, {})
        kind = override.get("type") or given.get(name) or infer_column_type(name, col)
        missing = float(col.isna().mean()) if n else 0.0
        n_unique = int(col.nunique(dropna=True))
        dropped = None
        if override.get("exclude") is True:
            dropped = "excluded"
        elif kind == "identifier":
            dropped = "identifier"
        elif missing == 1.0:
            dropped = "all_missing"
        elif n_unique + (1 if missing > 0 else 0) <= 1:
            dropped = "constant"
        numeric_dtype = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        columns.append(
            {
                "name": name,
                "type": kind,
                "dtype": str(col.dtype),
                "missing_fraction": round(missing, 6),
                "n_unique": n_unique,
                "dropped": dropped,
                "keep": override.get("exclude") is False,  # the user vouched for it: never drop as a leak
                "impute": override.get("impute") or _default_impute(kind),
                "high_cardinality": kind == "categorical" and n_unique > ONEHOT_MAX_CATEGORIES,
                # numeric types held in a non-numeric dtype are parsed inside the pipeline
                "cast": kind in ("numeric", "integer") and not numeric_dtype,
            }
        )
    return {"columns": columns}


def feature_columns(plan: dict) -> list[dict]:
    """The plan's columns that are used as features."""
    return [c for c in plan["columns"] if c["dropped"] is None]
