"""How trials are validated: k-fold cross-validation, a holdout split or a separate validation set.

The choice is a small JSON dict (stored with the search and copied into every trial spec)::

    {"method": "cv", "n_folds": 5, "seed": 0, "reason": "..."}
    {"method": "holdout", "fraction": 0.1, "seed": 0, "reason": "..."}
    {"method": "validation_set", "reason": "..."}

Splits are recomputed from it wherever needed (stratified, fixed seed), so a worker on another
machine validates on exactly the same rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

CV_MAX_ROWS = 20_000  # "auto": cross-validation below this many training rows, holdout above
SMALL_ROWS = 1_000  # "auto": 10 folds below this, 5 above
METHODS = ("auto", "cv", "holdout", "validation_set")


def choose_validation(
    n_rows: int,
    min_class_count: int,
    *,
    method: str = "auto",
    n_folds: int | None = None,
    holdout_fraction: float | None = None,
    seed: int = 0,
    stratified: bool = True,
) -> dict:
    """Resolve the requested validation into a concrete plan; raises ValueError on bad settings.

    A regression passes ``stratified=False`` (and its row count as ``min_class_count``): its plan
    then says ``"stratified": false`` and its splits are plain shuffled ones.
    """
    plan = _choose(n_rows, min_class_count, method, n_folds, holdout_fraction, seed)
    if not stratified:
        plan["stratified"] = False
    return plan


def _choose(n_rows, min_class_count, method, n_folds, holdout_fraction, seed) -> dict:
    if method not in METHODS:
        raise ValueError(f"validation method must be one of {METHODS}; got {method!r}")
    if method == "validation_set":
        return {"method": "validation_set", "reason": "a separate validation data set was given"}
    if method == "auto":
        if n_rows < CV_MAX_ROWS:
            method = "cv"
            n_folds = n_folds or (10 if n_rows < SMALL_ROWS else 5)
            reason = f"{n_folds}-fold cross-validation: {n_rows:,} training rows < {CV_MAX_ROWS:,}"
        else:
            method = "holdout"
            holdout_fraction = holdout_fraction or 0.1
            reason = f"{holdout_fraction:.0%} holdout: {n_rows:,} training rows >= {CV_MAX_ROWS:,}"
    else:
        reason = "requested"
    if method == "cv":
        n_folds = int(n_folds or 5)
        if n_folds < 2:
            raise ValueError("n_folds must be at least 2")
        if min_class_count < n_folds:
            if min_class_count < 2:
                raise ValueError("every class needs at least 2 rows to be validated")
            reason += f"; folds reduced from {n_folds} to {min_class_count} (smallest class has {min_class_count} rows)"
            n_folds = min_class_count
        return {"method": "cv", "n_folds": n_folds, "seed": seed, "reason": reason}
    fraction = float(holdout_fraction or 0.1)
    if not 0.0 < fraction < 0.9:
        raise ValueError("holdout_fraction must be between 0 and 0.9")
    if min_class_count < 2:
        raise ValueError("every class needs at least 2 rows to be validated")
    return {"method": "holdout", "fraction": fraction, "seed": seed, "reason": reason}


def validation_splits(validation: dict, y) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_rows, valid_rows) index pairs for ``cv`` and ``holdout`` plans."""
    y = np.asarray(y)
    rows = np.arange(len(y))
    stratified = validation.get("stratified", True)  # plans stored before regression are stratified
    if validation["method"] == "cv":
        kind = StratifiedKFold if stratified else KFold
        folds = kind(validation["n_folds"], shuffle=True, random_state=validation["seed"])
        return [(tr, va) for tr, va in folds.split(rows, y if stratified else None)]
    if validation["method"] == "holdout":
        tr, va = train_test_split(
            rows, test_size=validation["fraction"], stratify=y if stratified else None, random_state=validation["seed"]
        )
        return [(np.sort(tr), np.sort(va))]
    raise ValueError(f"no splits for validation method {validation['method']!r}")


def validation_rows(validation: dict, n_rows: int, y) -> np.ndarray:
    """The rows whose predictions a trial returns (all rows for CV, the holdout rows otherwise)."""
    if validation["method"] == "cv":
        return np.arange(n_rows)
    if validation["method"] == "holdout":
        return validation_splits(validation, y)[0][1]
    return np.arange(n_rows)  # a separate validation set: all of its rows


def split_test(X, y, fraction: float, seed: int = 0, *, stratified: bool = True):
    """Hold out a test split (stratified for a classification), scored only on the final model:
    X_train, X_test, y_train, y_test."""
    if not 0.0 < fraction < 0.5:
        raise ValueError("test fraction must be between 0 and 0.5")
    return train_test_split(X, y, test_size=fraction, stratify=np.asarray(y) if stratified else None, random_state=seed)
