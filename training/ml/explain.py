"""Model explanations as plain JSON: permutation feature importance on the RAW columns.

Columns of the input DataFrame are shuffled one at a time and passed through the whole model
(featurizer included), so the importance of "age" covers its imputed values, its missing
indicator and everything derived from it — the columns the user knows, not encoder outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from .metrics import DIRECTIONS, is_regression_metric, score

MAX_ROWS = 2_000


def permutation_feature_importance(
    model,
    X: pd.DataFrame,
    y,
    classes,
    *,
    metric: str = "auc_weighted",
    n_repeats: int = 5,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
) -> list[dict]:
    """Importance of each raw column: the drop in ``metric`` when that column is shuffled.

    Returns ``[{"feature": name, "importance": mean drop, "std": std of the drop}, ...]`` sorted
    by importance, largest first. A positive importance always means "the model needs it", also
    for metrics where smaller is better (log loss). At most ``max_rows`` rows are used. For a
    regression metric, ``classes`` is ignored and the model's ``predict`` is scored.
    """
    regression = is_regression_metric(metric)
    y = np.asarray(y, dtype=np.float64 if regression else object)
    if len(X) > max_rows:
        rows = np.random.default_rng(seed).choice(len(X), max_rows, replace=False)
        X, y = X.iloc[np.sort(rows)], y[np.sort(rows)]
    sign = DIRECTIONS[metric]
    if regression:

        def scorer(estimator, X_, y_) -> float:
            value = score(metric, y_, np.asarray(estimator.predict(X_), dtype=np.float64), [])
            return sign * value if np.isfinite(value) else 0.0

    else:
        model_classes = list(model.classes_)
        order = [model_classes.index(c) for c in classes]

        def scorer(estimator, X_, y_) -> float:
            proba = np.asarray(estimator.predict_proba(X_))[:, order]
            return sign * score(metric, y_, proba, classes)

    result = permutation_importance(model, X, y, scoring=scorer, n_repeats=n_repeats, random_state=seed, n_jobs=1)
    rows = [
        {"feature": str(name), "importance": round(float(mean), 6), "std": round(float(std), 6)}
        for name, mean, std in zip(X.columns, result.importances_mean, result.importances_std, strict=True)
    ]
    rows.sort(key=lambda r: (-r["importance"], r["feature"]))
    return rows
