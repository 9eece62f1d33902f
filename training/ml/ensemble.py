"""Ensembles of the best trials, built from their out-of-fold (or holdout) probabilities.

* Voting: greedy ensemble selection with replacement (Caruana et al., 2004) over the validation
  probabilities, bagged over bootstrap samples of the rows; the weights are how often each trial
  was picked. Candidates are the best trial of each algorithm (``AutoMLSearch.ensemble_library``).
  The final model soft-votes the member pipelines refit on all training rows (assembled from
  their fitted parts, never refit again; see "Built for serving" below).
* Stacking: a logistic regression trained on the members' validation probabilities; the final
  model is a ``StackingClassifier`` whose members are the refit pipelines.

Both are plain scikit-learn estimators that take raw columns and save with ``modelio``.

Regression (a regression primary metric; ``classes`` is ``[]``): the same selection over the
members' validation predictions (vectors, not probability matrices), a ``VotingRegressor`` with
the weights, and a ``StackingRegressor`` whose meta-learner is a ``LinearRegression(positive=True)``
(a non-negative blend of the members, which cannot turn a member's prediction upside down).

Built for serving: a voting ensemble drops members whose removal changes the validation score by
less than ``PRUNE_TOLERANCE`` (lightest first), and members whose fitted featurizers are identical
(the same family of algorithm refit on the same rows) share one: the ensemble is
``Pipeline(featurizer, VotingClassifier(estimators))`` when every member shares it, else a
``VotingClassifier`` of one such pipeline per featurizer. ``choose_final_model`` keeps only
candidates whose measured 1-row latency is within the run's ``infer_limit_ms``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import StackingClassifier, StackingRegressor, VotingClassifier, VotingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch

from .latency import row_latency_ms, within_limit
from .metrics import DIRECTIONS, batch_scorer, is_better, is_regression_metric, score

SELECTION_PATIENCE = 6  # stop adding members after this many picks without improvement
SELECTION_BAGS = 15
SELECTION_BAG_ROWS = 1_000
MIN_MEMBER_WEIGHT = 0.04  # lighter members are dropped (each one costs a refit)
MAX_MEMBERS = 8
SHRINKAGE = 0.5  # weight of the equal-weight average of the statistically tied candidates
BOOTSTRAP_SAMPLES = 30
CROSS_FIT_FOLDS = 3
STACKING_C = 1.0
# A member whose removal moves the validation score by less than this (in the primary metric's
# units, all removals together) costs a scoring call per request for nothing: it is dropped.
PRUNE_TOLERANCE = 1e-4


def _select(preds: list[np.ndarray], y, classes, metric: str, iterations: int) -> tuple[np.ndarray, float]:
    """Greedy forward selection with replacement; returns (pick counts, in-sample score).

    Candidates are compared on the primary metric, then on log loss: when the primary metric is
    saturated (an AUC of 1.0 on a small data set), the better-calibrated blend wins the tie.
    """
    primary = batch_scorer(metric, y, classes)
    tie_break = metric != "log_loss" and not is_regression_metric(metric)
    logloss = batch_scorer("log_loss", y, classes) if tie_break else None
    sign = DIRECTIONS[metric]
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
    regression = is_regression_metric(metric)
    y = np.asarray(y, dtype=np.float64 if regression else object)
    rng = np.random.default_rng(seed)
    n = len(y)
    weights = np.zeros(len(preds))
    for _ in range(SELECTION_BAGS):
        rows = rng.choice(n, size=min(n, SELECTION_BAG_ROWS), replace=True)
        if not regression and len(np.unique(y[rows])) < len(np.unique(y)):
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
    sign = DIRECTIONS[metric]
    values = np.array([score(metric, y, p, classes) * sign for p in preds])
    values = np.nan_to_num(values, nan=-np.inf)
    best = int(np.argmax(values))
    n = len(y)
    boots = []
    for _ in range(BOOTSTRAP_SAMPLES):
        rows = rng.choice(n, size=n, replace=True)
        if is_regression_metric(metric) or len(np.unique(y[rows])) == len(np.unique(y)):
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
    if is_regression_metric(metric):
        return _stacking_regression(ids, predictions, y, metric, seed)
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


def _meta_regressor() -> LinearRegression:
    return LinearRegression(positive=True)


def _stacking_regression(ids, predictions, y, metric: str, seed: int) -> dict:
    y = np.asarray(y, dtype=np.float64)
    Z = np.column_stack([np.asarray(predictions[i], dtype=np.float64) for i in ids])
    members = [{"trial_id": int(i), "weight": None} for i in ids]
    if len(y) < 2 * CROSS_FIT_FOLDS:
        return {"kind": "stacking", "members": members, "score": None}
    cross = np.zeros(len(y))
    for fit_rows, score_rows in KFold(CROSS_FIT_FOLDS, shuffle=True, random_state=seed).split(Z):
        cross[score_rows] = _meta_regressor().fit(Z[fit_rows], y[fit_rows]).predict(Z[score_rows])
    value = score(metric, y, cross, [])
    return {"kind": "stacking", "members": members, "score": None if np.isnan(value) else round(float(value), 6)}


def _blend_score(weights: dict[int, float], predictions: dict[int, np.ndarray], y, classes, metric: str) -> float:
    total = sum(weights.values())
    blend = sum(w / total * np.asarray(predictions[i], dtype=np.float64) for i, w in weights.items())
    return float(score(metric, y, blend, classes))


def prune_members(
    voting: dict, predictions: dict[int, np.ndarray], y, classes, metric: str, *, tolerance: float = PRUNE_TOLERANCE
) -> dict:
    """Drop voting members that add little: each costs a scoring call per request.

    Members are tried lightest first; one is dropped when the blend without it (weights
    renormalised) scores within ``tolerance`` of the unpruned blend on the validation rows, up or
    down. The comparison is always with the unpruned score, so all removals together move it by
    less than ``tolerance``. Returns the plan with the members kept, its new ``score`` and ``pruned`` (the
    dropped trial ids, in the order they went).
    """
    sign = DIRECTIONS[metric]
    weights = {m["trial_id"]: m["weight"] for m in voting["members"]}
    full = _blend_score(weights, predictions, y, classes, metric) * sign
    position = {trial_id: k for k, trial_id in enumerate(weights)}
    pruned = []
    # lightest first; among equal weights the later (lower-ranked) trial first
    for trial_id in sorted(weights, key=lambda i: (weights[i], -position[i])):
        if len(weights) == 1:
            break
        rest = {i: w for i, w in weights.items() if i != trial_id}
        value = _blend_score(rest, predictions, y, classes, metric) * sign
        # |change| < tolerance: a member whose removal would raise the in-sample score by more is
        # kept too; it was weighted in by the shrinkage toward tied candidates, for generalisation
        if np.isfinite(value) and abs(value - full) < tolerance:
            weights = rest
            pruned.append(trial_id)
    total = sum(weights.values())
    members = [{"trial_id": i, "weight": round(w / total, 6)} for i, w in weights.items()]
    value = _blend_score(weights, predictions, y, classes, metric)
    return {**voting, "members": members, "score": round(value, 6), "pruned": pruned}


def same_fitted_state(a, b) -> bool:
    """Whether two fitted objects hold exactly the same parameters and fitted state (deep).

    Two members' featurizers are shared only when this holds: sharing then changes no output.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, type) or (callable(a) and not hasattr(a, "get_params")):
        return a is b or a == b
    if isinstance(a, np.ndarray):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype == object:
            return all(same_fitted_state(x, z) for x, z in zip(a.ravel(), b.ravel(), strict=True))
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (float, np.floating)):
        return bool(a == b or (np.isnan(a) and np.isnan(b)))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_fitted_state(x, z) for x, z in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_fitted_state(a[k], b[k]) for k in a)
    if isinstance(a, (pd.DataFrame, pd.Series, pd.Index)):
        return bool(a.equals(b))
    if hasattr(a, "__dict__"):
        return same_fitted_state(vars(a), vars(b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def featurizer_groups(members: dict[int, object]) -> list[list[int]]:
    """Trial ids grouped by identical fitted featurizer (``Pipeline(featurizer, estimator)``), in order.

    Trials of one algorithm family are refit on the same rows with the same plan and seed, so
    their featurizers come out identical; each group then featurises a request once.
    """
    groups: list[list[int]] = []
    for trial_id, pipeline in members.items():
        if not _shareable(pipeline):
            groups.append([trial_id])
            continue
        for group in groups:
            first = members[group[0]]
            if _shareable(first) and same_fitted_state(first.steps[0][1], pipeline.steps[0][1]):
                group.append(trial_id)
                break
        else:
            groups.append([trial_id])
    return groups


def _shareable(model) -> bool:
    return isinstance(model, Pipeline) and len(model.steps) == 2


def _fitted_voter(named: list[tuple[str, object]], weights: list[float], labels):
    """A soft VotingClassifier over already fitted estimators, with the state ``fit`` would leave
    (a VotingRegressor when ``labels`` is None: a regression).

    Built directly (as ``build_stacking_model`` does) rather than through ``FrozenEstimator``, so
    its members stay plain estimators for the ONNX converter.
    """
    if labels is None:
        regressor = VotingRegressor(named, weights=weights)
        regressor.estimators_ = [estimator for _, estimator in named]
        regressor.named_estimators_ = Bunch(**dict(named))
        return regressor
    voter = VotingClassifier(named, voting="soft", weights=weights)
    voter.estimators_ = [estimator for _, estimator in named]
    voter.named_estimators_ = Bunch(**dict(named))
    voter.le_ = LabelEncoder().fit(labels)
    voter.classes_ = voter.le_.classes_
    return voter


def build_voting_model(members: dict[int, object], weights: dict[int, float], X, y, *, regression: bool = False):
    """Soft-voting ensemble over already fitted member pipelines ({trial_id: pipeline}), featurising once.

    Members with identical featurizers become ``Pipeline(featurizer, VotingClassifier(their
    estimators))``; with one such group that pipeline is the model, otherwise a ``VotingClassifier``
    of the groups weighted by their members' total weight. Probabilities equal those of a flat
    vote over the members (to rounding). Takes raw columns like each member. With ``regression``
    the voters are VotingRegressors (a weighted average of the members' predictions).
    """
    ids = [i for i in weights if weights[i] > 0]
    if regression:
        labels = None
    else:
        y = np.asarray(y, dtype=object)
        labels = y[_rows_with_every_class(y)]
    parts = []
    for group in featurizer_groups({i: members[i] for i in ids}):
        if len(group) == 1:
            part = members[group[0]]
        else:
            voter = _fitted_voter(
                [(f"trial_{i}", members[i].steps[1][1]) for i in group], [weights[i] for i in group], labels
            )
            part = Pipeline([("featurizer", members[group[0]].steps[0][1]), ("voting", voter)])
        parts.append((group, part))
    if len(parts) == 1:
        return parts[0][1]
    outer = _fitted_voter(
        [("trials_" + "_".join(str(i) for i in group), part) for group, part in parts],
        [sum(weights[i] for i in group) for group, _ in parts],
        labels,
    )
    if hasattr(members[ids[0]], "feature_names_in_"):  # n_features_in_ is read from the first member
        outer.feature_names_in_ = members[ids[0]].feature_names_in_
    return outer


def build_stacking_model(
    members: dict[int, object], predictions: dict[int, np.ndarray], y_valid, *, seed: int = 0, regression: bool = False
):
    """Stacking classifier: refit member pipelines + a meta-model fit on their validation probabilities.

    ``predictions`` and ``y_valid`` are the members' out-of-fold (or holdout) probabilities and the
    matching labels; ``members`` are the pipelines refit on all training rows. With ``regression``:
    a StackingRegressor whose LinearRegression(positive=True) is fit on the members' predictions.
    """
    ids = list(predictions)
    if regression:
        Z = np.column_stack([np.asarray(predictions[i], dtype=np.float64) for i in ids])
        meta = _meta_regressor().fit(Z, np.asarray(y_valid, dtype=np.float64))
        stack = StackingRegressor(
            [(f"trial_{i}", members[i]) for i in ids], final_estimator=_meta_regressor(), cv="prefit"
        )
        stack.estimators_ = [members[i] for i in ids]
        stack.named_estimators_ = Bunch(**{f"trial_{i}": members[i] for i in ids})
        stack.stack_method_ = ["predict"] * len(ids)
        stack.final_estimator_ = meta
        if hasattr(members[ids[0]], "feature_names_in_"):
            stack.feature_names_in_ = members[ids[0]].feature_names_in_
        return stack
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

    The single trial's score is out-of-fold, the voting ensemble's (after ``prune_members``) is
    measured on the rows it was selected on, and the stacker's is cross-fitted. Latency plays no
    part here; ``choose_final_model`` is the same choice within an inference-time limit.
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
        voting = prune_members(voting, predictions, y_valid, classes, metric)
        candidates.append(voting)
        stack_ids = member_ids(voting) if len(voting["members"]) >= 2 else ranked[:5]
        stacking = stacking_ensemble({i: predictions[i] for i in stack_ids}, y_valid, classes, metric, seed=search.seed)
        candidates.append(stacking)
        # Ensemble selection starts from the best trial and only adds members that help, so a
        # multi-member voting ensemble is preferred (as Azure ML and AutoGluon do). Its score is
        # measured on the rows it was selected on, so a stacker, scored cross-fitted, must beat it.
        if _voting_preferred(voting, single, metric):
            chosen = voting
            if stacking["score"] is not None and is_better(metric, stacking["score"], voting["score"]):
                chosen = stacking
    return {"kind": chosen["kind"], "members": chosen["members"], "score": chosen["score"], "candidates": candidates}


def assemble_final_model(
    final: dict,
    members: dict[int, object],
    predictions: dict[int, np.ndarray],
    y_valid,
    X,
    y,
    *,
    seed: int = 0,
    regression: bool = False,
):
    """The final estimator for a ``plan_final_model`` choice, from member pipelines refit on all rows."""
    ids = member_ids(final)
    if final["kind"] == "single":
        return members[ids[0]]
    if final["kind"] == "voting":
        return build_voting_model(
            members, {m["trial_id"]: m["weight"] for m in final["members"]}, X, y, regression=regression
        )
    return build_stacking_model(
        {i: members[i] for i in ids}, {i: predictions[i] for i in ids}, y_valid, seed=seed, regression=regression
    )


def choose_final_model(
    search,
    predictions: dict[int, np.ndarray],
    y_valid,
    load_member,
    X,
    y,
    *,
    infer_limit_ms: float | None,
) -> tuple[dict, object]:
    """Choose, assemble and measure the final model within the run's 1-row latency limit.

    ``load_member(trial_id)`` returns a trial's pipeline refit on all training rows. Candidates:
    the best trial whose latency (measured by its trial) is within ``infer_limit_ms``; a voting
    ensemble of such trials, pruned (``prune_members``), then, while its measured latency is over
    the limit, without the member that costs the least validation score per millisecond; a
    stacker over the voting members. Each ensemble is assembled and measured here. A candidate
    over the limit is never chosen; among the rest the preference is ``plan_final_model``'s. When
    no trial is fast enough, the fastest one is kept and the plan says ``infer_limit_met: false``.
    Returns (plan JSON as ``plan_final_model``'s plus ``latency_ms``, ``infer_limit_ms``,
    ``infer_limit_met`` and per-candidate ``latency_ms``, the assembled model).
    """
    classes, metric = search.setup["classes"], search.metric
    regression = is_regression_metric(metric)
    latencies = {i: r.latency_ms for i, r in search.results.items()}
    loaded: dict[int, object] = {}

    def member(trial_id: int):
        if trial_id not in loaded:
            loaded[trial_id] = load_member(trial_id)
        return loaded[trial_id]

    X_row = X.iloc[:1]
    library = [i for i in search.ensemble_library(max_latency_ms=infer_limit_ms) if i in predictions]
    if not library:
        # any succeeded trial will do (its model is all that is needed): the fastest, then the better
        ranked = search.best_trials(len(search.results))
        if not ranked or not any(i in predictions for i in ranked):
            raise ValueError("no succeeded trial with validation predictions")
        fastest = min(ranked, key=lambda i: (latencies.get(i) or float("inf"), ranked.index(i)))
        single = {**_single_candidate(search, fastest, latencies.get(fastest)), "within_limit": False}
        if single["latency_ms"] is None:
            single["latency_ms"] = row_latency_ms(member(fastest), X.iloc[:1])
        plan = {**single, "candidates": [single], "infer_limit_ms": infer_limit_ms, "infer_limit_met": False}
        return plan, member(fastest)

    best = library[0]
    single = _single_candidate(search, best, latencies.get(best))
    if single["latency_ms"] is None:  # a trial from before latencies were recorded
        single["latency_ms"] = row_latency_ms(member(best), X_row)
    candidates, models = [single], {"single": member(best)}
    if search.spec.ensembles and len(library) >= 2:
        preds = {i: predictions[i] for i in library}
        voting = voting_ensemble(
            preds, y_valid, classes, metric, iterations=search.spec.ensemble_iterations, seed=search.seed
        )
        voting = prune_members(voting, preds, y_valid, classes, metric)
        while True:
            weights = {m["trial_id"]: m["weight"] for m in voting["members"]}
            models["voting"] = build_voting_model({i: member(i) for i in weights}, weights, X, y, regression=regression)
            voting["latency_ms"] = row_latency_ms(models["voting"], X_row)
            if within_limit(voting["latency_ms"], infer_limit_ms) or len(weights) < 2:
                break
            voting = _drop_costliest_member(voting, preds, y_valid, classes, metric, latencies)
        candidates.append(voting)
        stack_ids = member_ids(voting) if len(voting["members"]) >= 2 else library[:5]
        stacking = stacking_ensemble({i: preds[i] for i in stack_ids}, y_valid, classes, metric, seed=search.seed)
        models["stacking"] = build_stacking_model(
            {i: member(i) for i in stack_ids},
            {i: preds[i] for i in stack_ids},
            y_valid,
            seed=search.seed,
            regression=regression,
        )
        stacking["latency_ms"] = row_latency_ms(models["stacking"], X_row)
        candidates.append(stacking)
    for candidate in candidates:
        candidate["within_limit"] = within_limit(candidate["latency_ms"], infer_limit_ms)
    chosen = _preferred([c for c in candidates if c["within_limit"]], metric)
    met = chosen is not None
    if chosen is None:  # measured over the limit after all (a busy core): the fastest candidate
        chosen = min(candidates, key=lambda c: c["latency_ms"])
    plan = {
        "kind": chosen["kind"],
        "members": chosen["members"],
        "score": chosen["score"],
        "latency_ms": chosen["latency_ms"],
        "infer_limit_ms": infer_limit_ms,
        "infer_limit_met": met,
        "candidates": candidates,
    }
    return plan, models[chosen["kind"]]


def _single_candidate(search, trial_id: int, latency_ms: float | None) -> dict:
    return {
        "kind": "single",
        "members": [{"trial_id": trial_id, "weight": 1.0}],
        "score": search.results[trial_id].score,
        "latency_ms": latency_ms,
    }


def _voting_preferred(voting: dict, single: dict | None, metric: str) -> bool:
    """Whether a voting ensemble is preferred to the single best trial: when it has two or more
    members (selection only adds members that help). A regression's must also score at least as
    well in validation: once members were dropped to meet the scoring time limit, what is left
    can score worse than the best trial (cps1988_wage on a busy machine: a blend of gradient
    boosting, k-NN and an elastic net at 0.05045 normalised RMSE, the best fast trial at 0.05039)."""
    if len(voting["members"]) < 2:
        return False
    if not is_regression_metric(metric) or single is None or voting["score"] is None:
        return True
    return not is_better(metric, single["score"], voting["score"])


def _preferred(candidates: list[dict], metric: str) -> dict | None:
    """``plan_final_model``'s preference among the candidates allowed: a voting ensemble of two or
    more members over the single trial, a stacker over the voting ensemble only if it scores better."""
    by_kind = {c["kind"]: c for c in candidates}
    chosen = by_kind.get("single")
    voting, stacking = by_kind.get("voting"), by_kind.get("stacking")
    if voting is not None and _voting_preferred(voting, chosen, metric):
        chosen = voting
        if (
            stacking is not None
            and stacking["score"] is not None
            and is_better(metric, stacking["score"], voting["score"])
        ):
            chosen = stacking
    return chosen


def _drop_costliest_member(voting: dict, predictions, y, classes, metric: str, latencies: dict) -> dict:
    """The voting plan without the member that costs the least validation score per millisecond."""
    sign = DIRECTIONS[metric]
    weights = {m["trial_id"]: m["weight"] for m in voting["members"]}
    full = _blend_score(weights, predictions, y, classes, metric) * sign

    def loss_per_ms(trial_id: int) -> float:
        rest = {i: w for i, w in weights.items() if i != trial_id}
        value = _blend_score(rest, predictions, y, classes, metric) * sign
        loss = full - value if np.isfinite(value) else float("inf")
        return loss / max(latencies.get(trial_id) or 1.0, 0.01)

    drop = min(weights, key=lambda i: (loss_per_ms(i), -list(weights).index(i)))
    rest = {i: w for i, w in weights.items() if i != drop}
    total = sum(rest.values())
    members = [{"trial_id": i, "weight": round(w / total, 6)} for i, w in rest.items()]
    value = round(_blend_score(rest, predictions, y, classes, metric), 6)
    return {
        **voting,
        "members": members,
        "score": value,
        "dropped_for_latency": [*voting.get("dropped_for_latency", []), drop],
    }
