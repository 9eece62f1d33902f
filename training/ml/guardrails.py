"""Data guardrails: checks run before the search, reported as plain dicts.

Each guardrail is ``{"name": str, "status": "passed" | "done" | "alerted", "message": str,
"details": dict}``: *passed* means nothing was found, *done* means the studio changed something
(e.g. imputed missing values), *alerted* means the user should look (e.g. a leaking column).

Leak detection fits one tiny model per column (3-fold CV on at most ``LEAK_SAMPLE_ROWS`` rows): a
column that alone predicts the target with AUC >= ``LEAK_AUC`` is dropped, unless the user kept it
explicitly with the column override ``{"exclude": false}``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import skew
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from .columns import feature_columns
from .metrics import score

LEAK_AUC = 0.99
LEAK_SAMPLE_ROWS = 3_000
IMBALANCE_RATIO = 0.2  # smallest class / largest class below this is "imbalanced"
MIN_ROWS_PER_CLASS = 10
LEAK_R2 = 0.99  # regression: a column alone explaining this much of the target's variance leaks it
LEAK_SPEARMAN = 0.995  # ... or a number column in (almost) the target's own order (a copy in other units)
SKEW_LIMIT = 1.0  # a positive target skewed more than this is also tried on a log scale


def _guardrail(name: str, status: str, message: str, details: dict | None = None) -> dict:
    return {"name": name, "status": status, "message": message, "details": details or {}}


def _single_column_auc(col: pd.Series, kind: str, y: np.ndarray, classes: list, seed: int) -> float:
    """Cross-validated AUC of a model that sees only this column."""
    if kind in ("numeric", "integer") or (kind == "boolean" and pd.api.types.is_numeric_dtype(col)):
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float).reshape(-1, 1)
    elif kind in ("categorical", "boolean"):
        x = None
    else:
        return float("nan")
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    oof = np.zeros((len(y), len(classes)))
    for tr, va in folds.split(np.zeros(len(y)), y):
        if x is not None:
            tree = DecisionTreeClassifier(min_samples_leaf=5, max_leaf_nodes=64, random_state=seed)
            tree.fit(x[tr], y[tr])
            proba = tree.predict_proba(x[va])
            index = {c: i for i, c in enumerate(tree.classes_)}
            for j, c in enumerate(classes):
                if c in index:
                    oof[va, j] = proba[:, index[c]]
        else:
            # class frequencies per category, learned on the other folds (unseen -> prior)
            keys = col.astype(object).where(col.notna(), "__missing__").astype(str).to_numpy()
            frame = pd.DataFrame({"k": keys[tr], "y": y[tr]})
            table = pd.crosstab(frame["k"], frame["y"]).reindex(columns=classes, fill_value=0)
            prior = table.sum(axis=0).to_numpy(dtype=float) + 1.0
            counts = table.to_numpy(dtype=float) + prior / prior.sum()
            rates = counts / counts.sum(axis=1, keepdims=True)
            lookup = dict(zip(table.index, rates, strict=True))
            fallback = prior / prior.sum()
            oof[va] = np.array([lookup.get(k, fallback) for k in keys[va]])
    return score("auc_weighted", y, oof, classes)


def _single_column_r2(col: pd.Series, kind: str, y: np.ndarray, seed: int) -> float:
    """Cross-validated R² of a model that sees only this column (a regression's leak check)."""
    if kind in ("numeric", "integer") or (kind == "boolean" and pd.api.types.is_numeric_dtype(col)):
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float).reshape(-1, 1)
        keys = None
        present = ~np.isnan(x[:, 0])
        if present.sum() >= 15 and abs(score("spearman", y[present], x[present, 0], [])) >= LEAK_SPEARMAN:
            return 1.0  # the target in other units or with noise: no model needed to see it
    elif kind in ("categorical", "boolean"):
        x, keys = None, col.astype(object).where(col.notna(), "__missing__").astype(str).to_numpy()
    else:
        return float("nan")
    oof = np.zeros(len(y))
    for tr, va in KFold(3, shuffle=True, random_state=seed).split(y):
        if x is not None:
            tree = DecisionTreeRegressor(min_samples_leaf=3, max_leaf_nodes=256, random_state=seed)
            oof[va] = tree.fit(x[tr], y[tr]).predict(x[va])
        else:
            means = pd.Series(y[tr]).groupby(keys[tr]).mean()  # the category's mean, learned elsewhere
            oof[va] = pd.Series(keys[va]).map(means).fillna(float(y[tr].mean())).to_numpy()
    return score("r2", y, oof, [])


def detect_leaks(
    X: pd.DataFrame,
    y,
    plan: dict,
    classes: list,
    *,
    seed: int = 0,
    threshold: float = LEAK_AUC,
    task: str = "classification",
) -> dict:
    """{column: single-column AUC} for the feature columns that alone predict the target too well
    (for a regression: {column: single-column R²} at or above ``LEAK_R2``)."""
    if task == "regression":
        return _detect_regression_leaks(X, np.asarray(y, dtype=np.float64), plan, seed)
    y = np.asarray(y, dtype=object)
    rows = np.arange(len(y))
    if len(rows) > LEAK_SAMPLE_ROWS:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, LEAK_SAMPLE_ROWS, replace=False))
    y_s = y[rows]
    if min(pd.Series(y_s).value_counts()) < 3:
        return {}
    leaks = {}
    for column in feature_columns(plan):
        if column["keep"]:
            continue
        auc = _single_column_auc(
            X[column["name"]].iloc[rows].reset_index(drop=True), column["type"], y_s, classes, seed
        )
        if auc == auc and auc >= threshold:
            leaks[column["name"]] = round(auc, 4)
    return leaks


def _detect_regression_leaks(X: pd.DataFrame, y: np.ndarray, plan: dict, seed: int) -> dict:
    rows = np.arange(len(y))
    if len(rows) > LEAK_SAMPLE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, LEAK_SAMPLE_ROWS, replace=False))
    y_s = y[rows]
    if len(y_s) < 15 or np.all(y_s == y_s[0]):
        return {}
    leaks = {}
    for column in feature_columns(plan):
        if column["keep"]:
            continue
        r2 = _single_column_r2(X[column["name"]].iloc[rows].reset_index(drop=True), column["type"], y_s, seed)
        if r2 == r2 and r2 >= LEAK_R2:
            leaks[column["name"]] = round(r2, 4)
    return leaks


def target_profile(y) -> dict:
    """What the regression guardrails need to know of the target: range, spread, skew, zeros."""
    y = np.asarray(y, dtype=np.float64)
    return {
        "min": float(y.min()),
        "max": float(y.max()),
        "mean": float(y.mean()),
        "std": float(y.std()),
        "skew": round(float(skew(y)), 4) if len(y) > 2 and y.std() > 0 else 0.0,
        "zeros": int(np.sum(y == 0)),
        "distinct": int(len(np.unique(y))),
    }


def suggest_target_transform(stats: dict) -> str | None:
    """ "log1p" for a positive target skewed past ``SKEW_LIMIT`` (prices, counts, durations)."""
    return "log1p" if stats["min"] > 0 and abs(stats["skew"]) > SKEW_LIMIT else None


def run_regression_guardrails(
    *, plan: dict, target: dict, target_transform: str | None, validation: dict, leaks: dict, dropped_rows: int = 0
) -> list[dict]:
    """The guardrail report of a regression: the target (missing rows, skew) instead of the
    classes, then the feature checks every run gets."""
    out = []
    if dropped_rows:
        out.append(
            _guardrail(
                "missing_target",
                "done",
                f"{dropped_rows:,} row(s) without a target value were left out.",
                {"rows": dropped_rows},
            )
        )
    else:
        out.append(_guardrail("missing_target", "passed", "Every row has a target value.", {"rows": 0}))
    if target_transform == "log1p":
        out.append(
            _guardrail(
                "skewed_target",
                "done",
                f"The target is skewed (skewness {target['skew']:.2f}) and positive: the best candidates "
                "are also trained on log(1 + target), predictions transformed back.",
                {"skew": target["skew"], "transform": "log1p", "limit": SKEW_LIMIT},
            )
        )
    else:
        out.append(
            _guardrail(
                "skewed_target",
                "passed",
                f"The target's skewness is {target['skew']:.2f}"
                + ("." if target["min"] > 0 or abs(target["skew"]) <= SKEW_LIMIT else " (not all positive: no log)."),
                {"skew": target["skew"], "limit": SKEW_LIMIT},
            )
        )
    feature_checks = run_guardrails(
        plan=plan, class_counts={"-": 1}, class_weight=None, validation=validation, leaks=leaks
    )
    for guardrail in feature_checks:
        if guardrail["name"] in ("class_balancing", "rows_per_class"):
            continue
        if guardrail["name"] == "target_leakage":
            guardrail = _leak_guardrail(leaks)
        out.append(guardrail)
    return out


def _leak_guardrail(leaks: dict) -> dict:
    if leaks:
        return _guardrail(
            "target_leakage",
            "alerted",
            f"{len(leaks)} column(s) alone predict the target almost perfectly (R² >= {LEAK_R2} or "
            f"rank correlation >= {LEAK_SPEARMAN}) and were dropped.",
            {"columns": leaks, "threshold": LEAK_R2},
        )
    return _guardrail(
        "target_leakage", "passed", "No single column predicts the target almost perfectly.", {"threshold": LEAK_R2}
    )


def run_guardrails(
    *,
    plan: dict,
    class_counts: dict,
    class_weight: str | None,
    validation: dict,
    leaks: dict,
) -> list[dict]:
    """The guardrail report for a prepared run (the plan already has leaks and identifiers dropped)."""
    out = []
    counts = {str(k): int(v) for k, v in class_counts.items()}
    smallest, largest = min(counts.values()), max(counts.values())
    ratio = smallest / largest
    weighting = "balanced class weights" if class_weight == "balanced" else "no class weighting"
    if ratio < IMBALANCE_RATIO:
        out.append(
            _guardrail(
                "class_balancing",
                "alerted",
                f"Classes are imbalanced (smallest/largest = {ratio:.2f}); {weighting} applied.",
                {"class_counts": counts, "ratio": round(ratio, 4), "class_weight": class_weight},
            )
        )
    else:
        out.append(
            _guardrail(
                "class_balancing",
                "passed",
                f"Classes are balanced enough (smallest/largest = {ratio:.2f}).",
                {"class_counts": counts, "ratio": round(ratio, 4), "class_weight": class_weight},
            )
        )

    few = {k: v for k, v in counts.items() if v < MIN_ROWS_PER_CLASS}
    if few:
        out.append(
            _guardrail(
                "rows_per_class",
                "alerted",
                f"{len(few)} class(es) have fewer than {MIN_ROWS_PER_CLASS} rows; their scores are unreliable.",
                {"classes": few, "minimum": MIN_ROWS_PER_CLASS},
            )
        )
    else:
        out.append(
            _guardrail(
                "rows_per_class",
                "passed",
                f"Every class has at least {MIN_ROWS_PER_CLASS} rows.",
                {"minimum": MIN_ROWS_PER_CLASS},
            )
        )

    features = feature_columns(plan)
    imputed = {
        c["name"]: {"missing_fraction": c["missing_fraction"], "strategy": _impute_label(c)}
        for c in features
        if c["missing_fraction"] > 0
    }
    if imputed:
        out.append(
            _guardrail(
                "missing_values_imputation",
                "done",
                f"Missing values imputed in {len(imputed)} column(s).",
                {"columns": imputed},
            )
        )
    else:
        out.append(_guardrail("missing_values_imputation", "passed", "No missing values in the feature columns."))

    high = {
        c["name"]: {
            "cardinality": c["n_unique"],
            "encoding": "target encoding for linear models, ordinal codes for tree models",
        }
        for c in features
        if c["high_cardinality"]
    }
    if high:
        out.append(
            _guardrail(
                "high_cardinality_features",
                "done",
                f"{len(high)} high-cardinality categorical column(s) encoded.",
                {"columns": high},
            )
        )
    else:
        out.append(_guardrail("high_cardinality_features", "passed", "No high-cardinality categorical columns."))

    identifiers = [c["name"] for c in plan["columns"] if c["dropped"] == "identifier"]
    if identifiers:
        out.append(
            _guardrail(
                "identifier_columns",
                "alerted",
                f"{len(identifiers)} identifier-like column(s) dropped.",
                {"columns": identifiers},
            )
        )
    else:
        out.append(_guardrail("identifier_columns", "passed", "No identifier-like columns."))

    if leaks:
        out.append(
            _guardrail(
                "target_leakage",
                "alerted",
                f"{len(leaks)} column(s) alone predict the target almost perfectly "
                f"(AUC >= {LEAK_AUC}) and were dropped.",
                {"columns": leaks, "threshold": LEAK_AUC},
            )
        )
    else:
        out.append(
            _guardrail(
                "target_leakage",
                "passed",
                "No single column predicts the target almost perfectly.",
                {"threshold": LEAK_AUC},
            )
        )

    constant = [c["name"] for c in plan["columns"] if c["dropped"] in ("constant", "all_missing")]
    if constant:
        out.append(
            _guardrail(
                "constant_columns",
                "done",
                f"{len(constant)} constant or empty column(s) dropped.",
                {"columns": constant},
            )
        )
    else:
        out.append(_guardrail("constant_columns", "passed", "No constant columns."))

    out.append(
        _guardrail("validation", "done", validation["reason"], {k: v for k, v in validation.items() if k != "reason"})
    )
    return out


def _impute_label(column: dict) -> str:
    if column["type"] == "categorical" or (column["type"] == "boolean" and column["impute"] == "category"):
        return "missing treated as its own category"
    if column["type"] == "text":
        return "empty text"
    return f"{column['impute']} with a missing-value indicator (gradient boosting handles missing values natively)"
