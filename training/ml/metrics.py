"""Classification and regression metrics and chart data, as plain JSON (no Django, no plotting library).

Every function takes true labels, a probability matrix whose columns follow ``classes`` (the
sorted class labels the engine uses everywhere) and returns floats, lists and dicts only, so the
results can be stored in JSON fields and drawn by any front end. Curves are downsampled to at most
``MAX_CURVE_POINTS`` points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as skm

from .tasks import REGRESSION_PRIMARY_METRICS

MAX_CURVE_POINTS = 200

# name -> +1 when larger is better, -1 when smaller is better.
METRIC_DIRECTIONS: dict[str, int] = {
    "accuracy": 1,
    "balanced_accuracy": 1,
    "auc_weighted": 1,
    "auc_macro": 1,
    "auc_micro": 1,
    "f1_weighted": 1,
    "f1_macro": 1,
    "precision_weighted": 1,
    "recall_weighted": 1,
    "average_precision_weighted": 1,
    "log_loss": -1,
    "matthews_correlation": 1,
}
# Regression metrics take a vector of predictions where classification takes probabilities.
REGRESSION_DIRECTIONS: dict[str, int] = {
    "normalized_rmse": -1,
    "rmse": -1,
    "mae": -1,
    "r2": 1,
    "spearman": 1,
    "mape": -1,
}
# every metric's direction, for code that ranks by either task's metrics
DIRECTIONS: dict[str, int] = {**METRIC_DIRECTIONS, **REGRESSION_DIRECTIONS}
MAX_CHART_POINTS = 2_000
RESIDUAL_BINS = 30
PRIMARY_METRICS = (
    "accuracy",
    "auc_weighted",
    "balanced_accuracy",
    "f1_weighted",
    "average_precision_weighted",
    "log_loss",
)


def check_primary_metric(name: str, task: str = "classification") -> str:
    allowed = REGRESSION_PRIMARY_METRICS if task == "regression" else PRIMARY_METRICS
    if name not in allowed:
        raise ValueError(f"primary_metric must be one of {', '.join(allowed)}; got {name!r}")
    return name


def is_regression_metric(name: str) -> bool:
    return name in REGRESSION_DIRECTIONS


def is_better(metric: str, a: float | None, b: float | None) -> bool:
    """True when score ``a`` is strictly better than ``b`` for ``metric`` (None is worst)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return True
    return a * DIRECTIONS[metric] > b * DIRECTIONS[metric]


def sort_key(metric: str, score: float | None) -> float:
    """A key where smaller is better, for sorting leaderboards (failed trials last)."""
    if score is None or math.isnan(score):
        return math.inf
    return -score * DIRECTIONS[metric]


def _as_labels(y, classes: Sequence) -> np.ndarray:
    """Map labels to column indices of ``classes``; unknown labels raise."""
    lookup = {c: i for i, c in enumerate(classes)}
    try:
        return np.fromiter((lookup[v] for v in np.asarray(y, dtype=object)), dtype=np.int64, count=len(y))
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of the model's classes") from None


def _one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(codes), n_classes), dtype=np.int8)
    out[np.arange(len(codes)), codes] = 1
    return out


def _clean_proba(proba) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    p = np.clip(p, 0.0, 1.0)
    sums = p.sum(axis=1, keepdims=True)
    sums[sums == 0] = 1.0
    return p / sums


def _auc(onehot: np.ndarray, proba: np.ndarray, average: str) -> float:
    present = onehot.sum(axis=0)
    usable = (present > 0) & (present < len(onehot))
    if usable.sum() == 0:
        return float("nan")
    if average == "micro":
        return float(skm.roc_auc_score(onehot[:, usable].ravel(), proba[:, usable].ravel()))
    scores = np.array([skm.roc_auc_score(onehot[:, k], proba[:, k]) for k in np.flatnonzero(usable)])
    if average == "macro":
        return float(scores.mean())
    weights = present[usable].astype(float)
    return float(np.average(scores, weights=weights))


def _average_precision_weighted(onehot: np.ndarray, proba: np.ndarray) -> float:
    present = onehot.sum(axis=0)
    usable = present > 0
    scores = np.array([skm.average_precision_score(onehot[:, k], proba[:, k]) for k in np.flatnonzero(usable)])
    return float(np.average(scores, weights=present[usable].astype(float)))


def score(metric: str, y_true, proba, classes: Sequence) -> float:
    """One metric from labels and a probability matrix (columns follow ``classes``); for a
    regression metric, from true values and a vector of predictions (``classes`` is ignored)."""
    if metric in REGRESSION_DIRECTIONS:
        return regression_score(metric, y_true, proba)
    codes = _as_labels(y_true, classes)
    p = _clean_proba(proba)
    return _score_codes(metric, codes, p, len(classes))


def scorer(metric: str, y_true, classes: Sequence):
    """A fast ``proba -> score`` function for fixed labels (used in loops such as ensemble selection)."""
    if metric in REGRESSION_DIRECTIONS:
        return lambda pred: regression_score(metric, y_true, pred)
    codes = _as_labels(y_true, classes)
    k = len(classes)
    if metric == "log_loss":
        rows = np.arange(len(codes))
        eps = np.finfo(np.float64).eps

        def logloss(proba) -> float:
            p = np.asarray(proba, dtype=np.float64)
            picked = p[rows, codes] / p.sum(axis=1)
            return float(-np.mean(np.log(np.clip(picked, eps, 1.0))))

        return logloss
    if metric not in ("auc_weighted", "auc_macro"):
        return lambda proba: _score_codes(metric, codes, _clean_proba(proba), k)
    # Rank-based (Mann-Whitney) AUC per class: the same value as roc_auc_score, several times faster.
    columns = [1] if k == 2 else [j for j in range(k) if 0 < np.sum(codes == j) < len(codes)]
    positives = {j: codes == j for j in columns}
    n_pos = {j: int(positives[j].sum()) for j in columns}
    weights = np.array([1.0 if metric == "auc_macro" or k == 2 else n_pos[j] for j in columns])

    def auc(proba) -> float:
        p = _clean_proba(proba)
        values = []
        for j in columns:
            ranks = rankdata(p[:, j])
            n1, n0 = n_pos[j], len(codes) - n_pos[j]
            values.append((ranks[positives[j]].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
        return float(np.average(values, weights=weights)) if values else float("nan")

    return auc


def _score_codes(metric: str, codes: np.ndarray, p: np.ndarray, n_classes: int) -> float:
    if metric in ("auc_weighted", "auc_macro", "auc_micro"):
        if n_classes == 2 and metric != "auc_micro":
            if len(np.unique(codes)) < 2:
                return float("nan")
            # For two classes both one-vs-rest AUCs are equal, so every average is the binary AUC.
            return float(skm.roc_auc_score(codes, p[:, 1]))
        return _auc(_one_hot(codes, n_classes), p, metric.split("_")[1])
    if metric == "average_precision_weighted":
        return _average_precision_weighted(_one_hot(codes, n_classes), p)
    if metric == "log_loss":
        return float(skm.log_loss(codes, p, labels=list(range(n_classes))))
    pred = p.argmax(axis=1)
    if metric == "accuracy":
        return float(skm.accuracy_score(codes, pred))
    if metric == "balanced_accuracy":
        return float(_balanced_accuracy(codes, pred))
    if metric == "matthews_correlation":
        return float(skm.matthews_corrcoef(codes, pred))
    if metric in ("f1_weighted", "f1_macro", "precision_weighted", "recall_weighted"):
        kind, average = metric.split("_")
        fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}[kind]
        return float(fn(codes, pred, average=average, zero_division=0))
    raise ValueError(f"unknown metric {metric!r}")


def _balanced_accuracy(codes: np.ndarray, pred: np.ndarray) -> float:
    recalls = [np.mean(pred[codes == k] == k) for k in np.unique(codes)]
    return float(np.mean(recalls))


def _positive_rank_sums(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """For each row of ``scores`` (m, n): the sum of the tie-averaged ranks of the positive columns.

    The Mann-Whitney statistic behind AUC, vectorised over m candidate blends (faster than
    ``scipy.stats.rankdata`` on small matrices).
    """
    m, n = scores.shape
    order = np.argsort(scores, axis=1)
    ordered = np.take_along_axis(scores, order, axis=1)
    starts = np.ones((m, n), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    flat = starts.ravel()
    group = np.cumsum(flat) - 1  # tie groups never span rows: each row starts a new group
    sizes = np.bincount(group)
    first = np.flatnonzero(flat) % n
    mean_rank = first + (sizes + 1) / 2.0
    ranks = mean_rank[group].reshape(m, n)
    return (ranks * positive[order]).sum(axis=1)


def batch_scorer(metric: str, y_true, classes: Sequence):
    """Like ``scorer`` but scores many probability matrices at once: (m, n, k) -> (m,) scores
    (for a regression metric: many prediction vectors, (m, n) -> (m,))."""
    if metric in REGRESSION_DIRECTIONS:
        return _regression_batch_scorer(metric, y_true)
    codes = _as_labels(y_true, classes)
    k = len(classes)
    n = len(codes)
    if metric == "log_loss":
        eps = np.finfo(np.float64).eps

        def logloss(blends) -> np.ndarray:
            b = np.asarray(blends, dtype=np.float64)
            picked = b[:, np.arange(n), codes] / b.sum(axis=2)
            return -np.mean(np.log(np.clip(picked, eps, 1.0)), axis=1)

        return logloss
    if metric in ("auc_weighted", "auc_macro"):
        columns = [1] if k == 2 else [j for j in range(k) if 0 < np.sum(codes == j) < n]
        positives = {j: codes == j for j in columns}
        n_pos = {j: int(positives[j].sum()) for j in columns}
        weights = np.array([1.0 if metric == "auc_macro" or k == 2 else n_pos[j] for j in columns])

        def auc(blends) -> np.ndarray:
            b = np.clip(np.asarray(blends, dtype=np.float64), 0.0, 1.0)
            sums = b.sum(axis=2, keepdims=True)
            b = b / np.where(sums == 0, 1.0, sums)  # the same normalisation as score()
            values = []
            for j in columns:
                n1, n0 = n_pos[j], n - n_pos[j]
                rank_sums = _positive_rank_sums(b[:, :, j], positives[j])
                values.append((rank_sums - n1 * (n1 + 1) / 2) / (n1 * n0))
            return np.average(np.array(values), axis=0, weights=weights)

        return auc
    single = scorer(metric, y_true, classes)
    return lambda blends: np.array([single(b) for b in blends])


def classification_metrics(y_true, proba, classes: Sequence) -> dict[str, float]:
    """All classification metrics the studio shows, as {name: float} (NaN becomes None)."""
    codes = _as_labels(y_true, classes)
    p = _clean_proba(proba)
    out = {}
    for name in METRIC_DIRECTIONS:
        value = _score_codes(name, codes, p, len(classes))
        out[name] = None if math.isnan(value) else round(value, 6)
    return out


# --- Regression ------------------------------------------------------------------------------
def _regression_arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if len(y) != len(pred):
        raise ValueError(f"{len(y)} true values but {len(pred)} predictions")
    return y, pred


def regression_score(metric: str, y_true, y_pred) -> float:
    """One regression metric; NaN where it is undefined (MAPE with a zero target, R² of a constant)."""
    y, pred = _regression_arrays(y_true, y_pred)
    if not np.all(np.isfinite(pred)):
        return float("nan")
    if metric in ("rmse", "normalized_rmse"):
        rmse = float(np.sqrt(np.mean((y - pred) ** 2)))
        if metric == "rmse":
            return rmse
        spread = float(y.max() - y.min()) if len(y) else 0.0
        return rmse / spread if spread > 0 else float("nan")
    if metric == "mae":
        return float(np.mean(np.abs(y - pred)))
    if metric == "r2":
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - pred) ** 2)) / total if total > 0 else float("nan")
    if metric == "spearman":
        if len(y) < 2 or np.all(y == y[0]) or np.all(pred == pred[0]):
            return float("nan")
        return float(np.corrcoef(rankdata(y), rankdata(pred))[0, 1])
    if metric == "mape":
        if np.any(y == 0):
            return float("nan")  # undefined: a zero target divides by zero
        return float(np.mean(np.abs((y - pred) / y)))
    raise ValueError(f"unknown metric {metric!r}")


def _regression_batch_scorer(metric: str, y_true):
    y = np.asarray(y_true, dtype=np.float64).ravel()
    if metric not in ("rmse", "normalized_rmse", "mae"):
        return lambda blends: np.array([regression_score(metric, y, b) for b in blends])
    spread = float(y.max() - y.min()) if len(y) else 0.0

    def batch(blends) -> np.ndarray:
        b = np.asarray(blends, dtype=np.float64)
        if metric == "mae":
            return np.mean(np.abs(b - y[None]), axis=1)
        rmse = np.sqrt(np.mean((b - y[None]) ** 2, axis=1))
        if metric == "rmse":
            return rmse
        return rmse / spread if spread > 0 else np.full(len(b), np.nan)

    return batch


def regression_metrics(y_true, y_pred) -> dict[str, float | None]:
    """The six regression metrics the studio shows, as {name: float} to 7 significant digits (a target
    in millionths keeps its errors); undefined or overflowed ones are None (MAPE when a true value is
    zero, Spearman of a constant prediction)."""
    out = {}
    for name in REGRESSION_DIRECTIONS:
        value = regression_score(name, y_true, y_pred)
        out[name] = float(f"{value:.7g}") if math.isfinite(value) else None
    return out


def regression_charts(y_true, y_pred, *, seed: int = 0) -> dict:
    """Chart data for one regression model on one data set, as plain JSON::

        {"task": "regression",
         "predicted_vs_actual": {"actual": [..], "predicted": [..]},
         "residual_histogram": {"edges": [..], "counts": [..]},
         "residuals_vs_predicted": {"predicted": [..], "residual": [..]}}

    Residuals are actual - predicted. The point clouds keep at most ``MAX_CHART_POINTS`` rows,
    a seeded sample (the histogram counts every row).
    """
    y, pred = _regression_arrays(y_true, y_pred)
    residual = y - pred
    rows = np.arange(len(y))
    if len(y) > MAX_CHART_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), MAX_CHART_POINTS, replace=False))
    finite = residual[np.isfinite(residual)]
    if len(finite):
        counts, edges = np.histogram(finite, bins=RESIDUAL_BINS)
    else:
        counts, edges = np.zeros(0, dtype=int), np.zeros(0)

    def floats(values) -> list[float]:
        return [round(float(v), 6) for v in values]

    return {
        "task": "regression",
        "predicted_vs_actual": {"actual": floats(y[rows]), "predicted": floats(pred[rows])},
        "residual_histogram": {"edges": floats(edges), "counts": [int(c) for c in counts]},
        "residuals_vs_predicted": {"predicted": floats(pred[rows]), "residual": floats(residual[rows])},
    }


# --- Chart data --------------------------------------------------------------------------------
def _downsample(*arrays: np.ndarray, limit: int = MAX_CURVE_POINTS) -> list[list[float]]:
    """Keep at most ``limit`` points of aligned arrays, always keeping the first and the last."""
    n = len(arrays[0])
    if n > limit:
        idx = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
        arrays = tuple(a[idx] for a in arrays)
    return [[round(float(v), 6) for v in a] for a in arrays]


def _roc(onehot_col: np.ndarray, p_col: np.ndarray) -> dict:
    fpr, tpr, _ = skm.roc_curve(onehot_col, p_col)
    fpr_s, tpr_s = _downsample(fpr, tpr)
    return {"fpr": fpr_s, "tpr": tpr_s, "auc": round(float(skm.auc(fpr, tpr)), 6)}


def _pr(onehot_col: np.ndarray, p_col: np.ndarray) -> dict:
    precision, recall, _ = skm.precision_recall_curve(onehot_col, p_col)
    # sklearn returns decreasing recall; draw left to right.
    recall_s, precision_s = _downsample(recall[::-1], precision[::-1])
    ap = skm.average_precision_score(onehot_col, p_col)
    return {"recall": recall_s, "precision": precision_s, "average_precision": round(float(ap), 6)}


def _gains(onehot_col: np.ndarray, p_col: np.ndarray, points: int = 100) -> dict:
    order = np.argsort(-p_col, kind="mergesort")
    hits = np.cumsum(onehot_col[order])
    total = max(int(onehot_col.sum()), 1)
    n = len(order)
    fractions = np.linspace(1 / points, 1.0, points)
    counts = np.maximum((fractions * n).round().astype(int), 1)
    gains = hits[counts - 1] / total
    lift = gains / fractions
    return {
        "population_fraction": [round(float(v), 4) for v in fractions],
        "cumulative_gain": [round(float(v), 6) for v in gains],
        "lift": [round(float(v), 6) for v in lift],
    }


def _calibration(onehot_col: np.ndarray, p_col: np.ndarray, bins: int = 10) -> dict:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_col, edges[1:-1]), 0, bins - 1)
    mean_pred, frac_pos, counts = [], [], []
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_pred.append(round(float(p_col[mask].mean()), 6))
            frac_pos.append(round(float(onehot_col[mask].mean()), 6))
            counts.append(int(mask.sum()))
    return {"mean_predicted": mean_pred, "fraction_positive": frac_pos, "count": counts}


def _json_label(v):
    return v.item() if isinstance(v, np.generic) else v


def classification_charts(y_true, proba, classes: Sequence) -> dict:
    """Chart data for one model on one data set, as plain JSON.

    Shape::

        {"classes": [...],
         "confusion_matrix": {"labels": [...], "counts": [[int]], "normalized": [[float]]},
         "roc": {"per_class": {label: {"fpr", "tpr", "auc"}}, "micro": {...}, "macro": {...}},
         "precision_recall": {"per_class": {label: {"recall", "precision", "average_precision"}},
                              "micro": {...}},
         "calibration": {label: {"mean_predicted", "fraction_positive", "count"}},
         "gains": {label: {"population_fraction", "cumulative_gain", "lift"}}}

    For two classes, ``calibration`` and ``gains`` hold the positive (second) class only.
    Labels are used as JSON keys, so they are converted with ``str``.
    """
    codes = _as_labels(y_true, classes)
    p = _clean_proba(proba)
    k = len(classes)
    onehot = _one_hot(codes, k)
    labels = [_json_label(c) for c in classes]
    keys = [str(c) for c in classes]

    cm = skm.confusion_matrix(codes, p.argmax(axis=1), labels=list(range(k)))
    row_sums = cm.sum(axis=1, keepdims=True)
    normalized = np.divide(cm, row_sums, out=np.zeros_like(cm, dtype=float), where=row_sums > 0)

    present = [j for j in range(k) if 0 < onehot[:, j].sum() < len(codes)]
    roc_per_class = {keys[j]: _roc(onehot[:, j], p[:, j]) for j in present}
    pr_per_class = {keys[j]: _pr(onehot[:, j], p[:, j]) for j in present}

    roc = {"per_class": roc_per_class}
    if present:
        roc["micro"] = _roc(onehot[:, present].ravel(), p[:, present].ravel())
        grid = np.linspace(0.0, 1.0, MAX_CURVE_POINTS)
        tprs = []
        for j in present:
            fpr, tpr, _ = skm.roc_curve(onehot[:, j], p[:, j])
            tprs.append(np.interp(grid, fpr, tpr))
        mean_tpr = np.mean(tprs, axis=0)
        mean_tpr[0] = 0.0
        roc["macro"] = {
            "fpr": [round(float(v), 6) for v in grid],
            "tpr": [round(float(v), 6) for v in mean_tpr],
            "auc": round(float(np.mean([roc_per_class[keys[j]]["auc"] for j in present])), 6),
        }
    pr = {"per_class": pr_per_class}
    if present:
        pr["micro"] = _pr(onehot[:, present].ravel(), p[:, present].ravel())

    chart_classes = [1] if k == 2 else present
    return {
        "classes": labels,
        "confusion_matrix": {
            "labels": labels,
            "counts": cm.astype(int).tolist(),
            "normalized": [[round(float(v), 6) for v in row] for row in normalized],
        },
        "roc": roc,
        "precision_recall": pr,
        "calibration": {keys[j]: _calibration(onehot[:, j], p[:, j]) for j in chart_classes},
        "gains": {keys[j]: _gains(onehot[:, j], p[:, j]) for j in chart_classes if onehot[:, j].any()},
    }
