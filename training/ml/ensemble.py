"""Ensembles of the best trials, built from their out-of-fold (or holdout) probabilities.

* Voting: greedy ensemble selection with replacement (Caruana et al., 2004) over the validation
  probabilities, bagged over bootstrap samples of the rows; the weights are how often each trial
  was picked. Candidates are the best trial of each algorithm (``AutoMLSearch.ensemble_library``).
  The final model is a soft ``VotingClassifier`` over the member pipelines refit on all training
  rows (wrapped in ``FrozenEstimator`` so that the voter does not refit them again).
* Stacking: a logistic regression trained on the members' validation probabilities; the final
  model is a ``StackingClassifier`` whose members are the refit pipelines.

Both are plain scikit-learn estimators that take raw columns and save with ``modelio``.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch

from .metrics import METRIC_DIRECTIONS, batch_scorer, is_better, score

SELECTION_PATIENCE = 6  # stop adding members after this many picks without improvement
SELECTION_BAGS = 15
SELECTION_BAG_ROWS = 1_000
MIN_MEMBER_WEIGHT = 0.04  # lighter members are dropped (each one costs a refit)
MAX_MEMBERS = 8
SHRINKAGE = 0.5  # weight of the equal-weight average of the statistically tied candidates
BOOTSTRAP_SAMPLES = 30
CROSS_FIT_FOLDS = 3
STACKING_C = 1.0


def _select(preds: list[np.ndarray], y, classes, metric: str, iterations: int) -> tuple[np.ndarray, float]:
    """Greedy forward selection with replacement; returns (pick counts, in-sample score).

    Candidates are compared on the primary metric, then on log loss: when the primary metric is
    saturated (an AUC of 1.0 on a small data set), the better-calibrated blend wins the tie.
    """
    primary = batch_scorer(metric, y, classes)
    logloss = batch_scorer("log_loss", y, classes) if metric != "log_loss" else None
    sign = METRIC_DIRECTIONS[metric]
    stacked = np.stack(preds)  # (candidates, rows, classes)
    counts = np.zeros(len(preds), dtype=int)
    total = np.zeros_like(preds[0], dtype=np.float64)
    best_counts, best_value = counts.copy(), (-np.inf, -np.inf)
    since_best = 0
    for step in range(1, iterations + 1):
        blends = (total[None] + stacked) / step
        main = np.round(np.nan_to_num(primary(blends) * sign, nan=-np.inf), 10)
        tie = -logloss(blends) if logloss is not None else np.zeros(len(preds))
        # best primary score, then best log loss, then the better single trial (lower index)
        pick = int(np.lexsort((np.arange(len(preds)), -tie, -main))[0])
        value = (main[pick], tie[pick])
        counts[pick] += 1
        total += preds[pick]
        if value > best_value:
            best_value, best_counts, since_best = value, counts.copy(), 0
        else:
            since_best += 1
            if since_best >= SELECTION_PATIENCE:
                break
    return best_counts, best_value[0] * sign


def _cross_fit_rows(y, seed: int):
    y = np.asarray(y, dtype=object)
    n_splits = int(min(CROSS_FIT_FOLDS, min(np.unique(y, return_counts=True)[1])))
    if n_splits < 2:
        return None
    return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def voting_ensemble(
    predictions: dict[int, np.ndarray], y, classes, metric: str, *, iterations: int = 40, seed: int = 0
) -> dict:
    """Bagged ensemble selection over ``predictions`` ({trial_id: probabilities}, best trial first).

    Greedy selection overfits the validation rows it picks on, most visibly on small data, so it
    is repeated on ``SELECTION_BAGS`` bootstrap samples of the rows and the pick frequencies are
    averaged (Caruana et al., 2006); the weights are then shrunk toward an equal-weight average of
    the candidates statistically tied with the best, and members below ``MIN_MEMBER_WEIGHT`` (or
    beyond the ``MAX_MEMBERS`` heaviest) are dropped. Returns JSON
    ``{"kind": "voting", "members": [{"trial_id": int, "weight": float}, ...], "score": float}``
    where weights sum to 1 and ``score`` is the blend's score on all validation rows.
    """
    ids = list(predictions)
    preds = [np.asarray(predictions[i], dtype=np.float64) for i in ids]
    y = np.asarray(y, dtype=object)
    rng = np.random.default_rng(seed)
    n = len(y)
    weights = np.zeros(len(preds))
    for _ in range(SELECTION_BAGS):
        rows = rng.choice(n, size=min(n, SELECTION_BAG_ROWS), replace=True)
        if len(np.unique(y[rows])) < len(np.unique(y)):
            continue
        counts, _ = _select([p[rows] for p in preds], y[rows], classes, metric, iterations)
        weights += counts / counts.sum()
    if weights.sum() == 0:
        counts, _ = _select(preds, y, classes, metric, iterations)
        weights = counts.astype(float)
    weights /= weights.sum()
    # Optimised weights carry estimation error, and simple averages of good models are hard to
    # beat: shrink toward equal weights over the candidates whose score is within two bootstrap
    # standard errors of the best. Small validation sets make many candidates indistinguishable
    # (strong shrinkage); large ones few (almost none).
    competitive = _indistinguishable_from_best(preds, y, classes, metric, rng)
    weights = (1 - SHRINKAGE) * weights + SHRINKAGE * competitive / competitive.sum()
    weights[weights < MIN_MEMBER_WEIGHT] = 0.0
    weights[np.argsort(-weights, kind="stable")[MAX_MEMBERS:]] = 0.0
    weights /= weights.sum()
    blend = sum(w * p for w, p in zip(weights, preds, strict=True) if w > 0)
    members = [{"trial_id": int(ids[j]), "weight": round(float(w), 6)} for j, w in enumerate(weights) if w > 0]
    return {"kind": "voting", "members": members, "score": round(float(score(metric, y, blend, classes)), 6)}


def _indistinguishable_from_best(preds, y, classes, metric: str, rng) -> np.ndarray:
    """1.0 for each candidate whose score is within ``2 * SE`` of the best one's (SE by bootstrap)."""
    sign = METRIC_DIRECTIONS[metric]
    values = np.array([score(metric, y, p, classes) * sign for p in preds])
    values = np.nan_to_num(values, nan=-np.inf)
    best = int(np.argmax(values))
    n = len(y)
    boots = []
    for _ in range(BOOTSTRAP_SAMPLES):
        rows = rng.choice(n, size=n, replace=True)
        if len(np.unique(y[rows])) == len(np.unique(y)):
            boots.append(score(metric, y[rows], preds[best][rows], classes))
    se = float(np.nanstd(boots)) if len(boots) >= 2 else 0.0
    return (values >= values[best] - 2 * se).astype(float)


def _stack_features(preds: list[np.ndarray]) -> np.ndarray:
    # the same layout StackingClassifier builds at predict time: for two classes only the
    # probability of the second class, otherwise every class
    cols = [p[:, 1:] if p.shape[1] == 2 else p for p in preds]
    return np.hstack(cols)


def _meta_model(seed: int) -> LogisticRegression:
    return LogisticRegression(C=STACKING_C, max_iter=2000, random_state=seed)


def stacking_ensemble(predictions: dict[int, np.ndarray], y, classes, metric: str, *, seed: int = 0) -> dict:
    """A logistic-regression stacker over ``predictions``.

    Returns JSON ``{"kind": "stacking", "members": [{"trial_id": int, "weight": null}, ...],
    "score": cross-fitted score}`` (a stacker has no fixed weights).
    """
    ids = list(predictions)
    y = np.asarray(y, dtype=object)
    Z = _stack_features([np.asarray(predictions[i], dtype=np.float64) for i in ids])
    folds = _cross_fit_rows(y, seed)
    if not folds:
        return {"kind": "stacking", "members": [{"trial_id": int(i), "weight": None} for i in ids], "score": None}
    cross = np.zeros((len(y), len(classes)))
    for fit_rows, score_rows in folds:
        meta = _meta_model(seed).fit(Z[fit_rows], y[fit_rows])
        proba = meta.predict_proba(Z[score_rows])
        index = {c: j for j, c in enumerate(meta.classes_)}
        for j, c in enumerate(classes):
            if c in index:
                cross[score_rows, j] = proba[:, index[c]]
    return {
        "kind": "stacking",
        "members": [{"trial_id": int(i), "weight": None} for i in ids],
        "score": round(float(score(metric, y, cross, classes)), 6),
    }


def build_voting_model(members: dict[int, object], weights: dict[int, float], X, y) -> VotingClassifier:
    """Soft-voting classifier over already fitted member pipelines ({trial_id: pipeline})."""
    ids = [i for i in weights if weights[i] > 0]
    voter = VotingClassifier(
        [(f"trial_{i}", FrozenEstimator(members[i])) for i in ids],
        voting="soft",
        weights=[weights[i] for i in ids],
    )
    # Frozen members ignore fit: this only records the classes. A few rows carrying every class do.
    rows = _rows_with_every_class(y)
    return voter.fit(X.iloc[rows], np.asarray(y, dtype=object)[rows])


def build_stacking_model(
    members: dict[int, object], predictions: dict[int, np.ndarray], y_valid, *, seed: int = 0
) -> StackingClassifier:
    """Stacking classifier: refit member pipelines + a meta-model fit on their validation probabilities.

    ``predictions`` and ``y_valid`` are the members' out-of-fold (or holdout) probabilities and the
    matching labels; ``members`` are the pipelines refit on all training rows.
    """
    ids = list(predictions)
    y_valid = np.asarray(y_valid, dtype=object)
    Z = _stack_features([np.asarray(predictions[i], dtype=np.float64) for i in ids])
    encoder = LabelEncoder().fit(y_valid)
    meta = _meta_model(seed).fit(Z, encoder.transform(y_valid))  # StackingClassifier decodes its output
    stack = StackingClassifier(
        [(f"trial_{i}", members[i]) for i in ids],
        final_estimator=_meta_model(seed),
        cv="prefit",
        stack_method="predict_proba",
    )
    # Assemble the fitted state StackingClassifier.fit would produce with cv="prefit", but with the
    # meta-model trained on out-of-fold probabilities instead of in-sample ones.
    stack.estimators_ = [members[i] for i in ids]
    stack.named_estimators_ = Bunch(**{f"trial_{i}": members[i] for i in ids})
    stack.stack_method_ = ["predict_proba"] * len(ids)
    stack.final_estimator_ = meta
    stack._label_encoder = encoder
    stack.classes_ = stack._label_encoder.classes_
    first = members[ids[0]]
    if hasattr(first, "feature_names_in_"):
        stack.feature_names_in_ = first.feature_names_in_
    return stack


def _rows_with_every_class(y) -> np.ndarray:
    y = np.asarray(y, dtype=object)
    _, first = np.unique(y.astype(str), return_index=True)
    return np.sort(first)


def selection_seconds_estimate(n_rows: int, n_classes: int, library_size: int) -> float:
    """Rough single-core seconds ``plan_final_model`` needs (calibrated on a 2020s x86 core)."""
    columns = 1 if n_classes == 2 else n_classes
    return 1e-7 * SELECTION_BAGS * min(n_rows, SELECTION_BAG_ROWS) * library_size * 25 * columns + 0.2


def member_ids(plan: dict) -> list[int]:
    """Trial ids of an ensemble or final-model plan's members."""
    return [m["trial_id"] for m in plan["members"]]


def plan_final_model(search, predictions: dict[int, np.ndarray], y_valid) -> dict:
    """Choose the final model among the best single trial, the voting and the stacking ensemble.

    ``predictions`` holds validation probabilities for (at least) the best trials; ``y_valid``
    their labels. Returns JSON::

        {"kind": "single" | "voting" | "stacking",
         "members": [{"trial_id": int, "weight": float | null}, ...], "score": float,
         "candidates": [{"kind", "members", "score", ...}, ...]}

    The single trial's score is out-of-fold, the voting ensemble's is measured on the rows it was
    selected on, and the stacker's is cross-fitted.
    """
    spec, classes, metric = search.spec, search.setup["classes"], search.metric
    ranked = [i for i in search.ensemble_library() if i in predictions]
    if not ranked:
        raise ValueError("no succeeded trial with validation predictions")
    best = ranked[0]
    single = {"kind": "single", "members": [{"trial_id": best, "weight": 1.0}], "score": search.results[best].score}
    candidates = [single]
    chosen = single
    if spec.ensembles and len(ranked) >= 2:
        voting = voting_ensemble(
            {i: predictions[i] for i in ranked},
            y_valid,
            classes,
            metric,
            iterations=spec.ensemble_iterations,
            seed=search.seed,
        )
        candidates.append(voting)
        stack_ids = member_ids(voting) if len(voting["members"]) >= 2 else ranked[:5]
        stacking = stacking_ensemble({i: predictions[i] for i in stack_ids}, y_valid, classes, metric, seed=search.seed)
        candidates.append(stacking)
        # Ensemble selection starts from the best trial and only adds members that help, so a
        # multi-member voting ensemble is preferred (as Azure ML and AutoGluon do). Its score is
        # measured on the rows it was selected on, so a stacker, scored cross-fitted, must beat it.
        if len(voting["members"]) >= 2:
            chosen = voting
            if stacking["score"] is not None and is_better(metric, stacking["score"], voting["score"]):
                chosen = stacking
    return {"kind": chosen["kind"], "members": chosen["members"], "score": chosen["score"], "candidates": candidates}


def assemble_final_model(
    final: dict, members: dict[int, object], predictions: dict[int, np.ndarray], y_valid, X, y, *, seed: int = 0
):
    """The final estimator for a ``plan_final_model`` choice, from member pipelines refit on all rows."""
    ids = member_ids(final)
    if final["kind"] == "single":
        return members[ids[0]]
    if final["kind"] == "voting":
        return build_voting_model(members, {m["trial_id"]: m["weight"] for m in final["members"]}, X, y)
    return build_stacking_model({i: members[i] for i in ids}, {i: predictions[i] for i in ids}, y_valid, seed=seed)
