"""Automated ML search for classification, in ask/tell form so that trials can run anywhere.

Flow (the caller owns processes, storage and time)::

    spec = AutoMLSpec.from_dict({...})
    setup = automl_setup(spec, X, y, seed=0)          # plan, validation, guardrails (JSON)
    search = AutoMLSearch(spec, setup, seed=0)
    while not search.is_done(elapsed_s=...):
        for trial in search.ask(free_workers):         # TrialSpec, JSON via to_dict()
            ... a worker calls trial.run_trial(trial, X, y) ...
        search.tell(trial_id, result)                  # TrialResult, in any order

How trials are chosen. First the *portfolio*: strong, cheap default configurations of every
allowed algorithm, in a fixed order (``algorithms.PORTFOLIO``). Then a local search in the spirit
of FLAML's CFO: pick an algorithm (the better its best score so far, the likelier), take its best
configuration and try a random step around it in a normalised (log-)space; the step shrinks as
steps fail to improve, and an algorithm whose steps keep failing is retired. Boosting models pick
their number of rounds by early stopping, so the search never pays for "more trees" by guessing.
This was chosen over TPE because a studio run gets tens of trials, not hundreds: a good starting
point plus local refinement beats a surrogate model that has too few points to learn from.

Determinism. Trial k is a pure function of (spec, setup, seed, the configurations proposed before
it, and the results of trials 0 .. k - lag), with ``lag = 2 * max_concurrent_trials - 1``; its
random draws come from ``numpy.random.default_rng([seed, k])``. ``ask`` proposes trial k only once
every trial up to k - lag has reported (and never lets more than ``max_concurrent_trials`` be
outstanding), so neither timing nor the order in which results arrive changes what is proposed;
the stop rules (max trials, metric threshold, no improvement) are evaluated on that same prefix
(a regression's no-improvement stop also waits for a share of the time budget: a wall-clock rule).
Compared with synchronous batches, the lag lets a worker start the next trial while one slow
trial is still running. Only wall-clock limits (the total budget and trial time limits) can cut
the sequence short or change it: a trial killed by its time limit is a failure like any other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .algorithms import check_algorithms, get_algorithm, portfolio_for
from .columns import plan_features
from .guardrails import (
    detect_leaks,
    run_guardrails,
    run_regression_guardrails,
    suggest_target_transform,
    target_profile,
)
from .latency import within_limit
from .metrics import DIRECTIONS, check_primary_metric, is_better, sort_key
from .tasks import CLASSIFICATION, DEFAULT_PRIMARY_METRIC, REGRESSION, check_task
from .trial import TrialResult, TrialSpec
from .validation import METHODS, choose_validation

INITIAL_STEP = 0.25
MIN_STEP = 0.03
STEP_DECAY = 0.8
# Scoring one row with the final model should take at most this long on one core (AutoGluon's
# infer_limit): ensembles of many members each with its own featurizer cost ~100 ms otherwise.
DEFAULT_INFER_LIMIT_MS = 10.0
# A skewed positive regression target: log1p variants of this many of the best trials (one per
# algorithm), proposed once this many portfolio results are in.
LOG_VARIANTS = 2
LOG_VARIANTS_AFTER = 3
# A regression's no-improvement stop waits until this share of the time budget is spent: its
# search gains come in small steps after long plateaus (cps1988_wage stopped after 30 trials
# without a gain at 33 s of 60, with the rest of the budget unused).
REGRESSION_EARLY_STOP_BUDGET_SHARE = 0.75


@dataclass(frozen=True)
class AutoMLSpec:
    """The user's settings for one Automated ML run (JSON: the field names below)."""

    primary_metric: str = "auc_weighted"
    validation: str = "auto"  # auto, cv, holdout, validation_set
    n_folds: int | None = None
    holdout_fraction: float | None = None
    test_fraction: float | None = None  # held out before anything else; scored only on the final model
    max_trials: int = 100
    max_concurrent_trials: int = 1
    trial_timeout_s: float = 300.0
    timeout_s: float = 3600.0
    metric_threshold: float | None = None
    early_stop_trials: int | None = 30  # stop after this many search trials without improvement
    allowed_algorithms: list | None = None
    blocked_algorithms: list = field(default_factory=list)
    class_weighting: str = "auto"  # auto, balanced, none
    column_types: dict | None = None
    column_overrides: dict | None = None
    ensembles: bool = True
    ensemble_per_algorithm: int = 1  # ensemble candidates: the best trials of each algorithm
    ensemble_iterations: int = 40
    # the most a 1-row predict_proba of the final model may take; None: best accuracy regardless of speed
    infer_limit_ms: float | None = DEFAULT_INFER_LIMIT_MS
    task: str = CLASSIFICATION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AutoMLSpec:
        """Build and validate a spec; raises ValueError naming the bad field."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown AutoML settings: {sorted(unknown)}")
        if data.get("task") == REGRESSION and "primary_metric" not in data:
            data = {**data, "primary_metric": DEFAULT_PRIMARY_METRIC[REGRESSION]}
        spec = cls(**data)
        spec.check()
        return spec

    def check(self) -> None:
        check_task(self.task)
        check_primary_metric(self.primary_metric, self.task)
        if self.validation not in METHODS:
            raise ValueError(f"validation must be one of {METHODS}")
        for name in ("max_trials", "max_concurrent_trials"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        for name in ("trial_timeout_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.test_fraction is not None and not 0.0 < self.test_fraction < 0.5:
            raise ValueError("test_fraction must be between 0 and 0.5")
        if self.ensemble_per_algorithm < 1:
            raise ValueError("ensemble_per_algorithm must be positive")
        if self.early_stop_trials is not None and self.early_stop_trials < 1:
            raise ValueError("early_stop_trials must be positive or null")
        if self.infer_limit_ms is not None and (
            isinstance(self.infer_limit_ms, bool)
            or not isinstance(self.infer_limit_ms, (int, float))
            or not self.infer_limit_ms > 0
        ):
            raise ValueError("infer_limit_ms must be a positive number of milliseconds, or null for no limit")
        if self.class_weighting not in ("auto", "balanced", "none"):
            raise ValueError("class_weighting must be auto, balanced or none")
        check_algorithms(self.allowed_algorithms, self.blocked_algorithms, self.task)


def _json_label(v):
    return v.item() if isinstance(v, np.generic) else v


def automl_setup(
    spec: AutoMLSpec,
    X: pd.DataFrame,
    y,
    *,
    seed: int = 0,
    has_validation_set: bool = False,
    dropped_target_rows: int = 0,
) -> dict:
    """Profile the training data once: featurization plan, validation, class weights, guardrails.

    Returns plain JSON::

        {"n_rows", "n_train_rows", "n_columns", "classes", "class_counts", "plan", "validation",
         "class_weight", "algorithms", "skipped_algorithms", "guardrails"}

    A regression (``spec.task``) has no classes (``[]``, ``{}``) and adds ``"task"``,
    ``"target"`` (guardrails.target_profile) and ``"target_transform"`` (None or "log1p").
    """
    spec.check()
    if spec.task == REGRESSION:
        return _regression_setup(spec, X, y, seed, has_validation_set, dropped_target_rows)
    y = pd.Series(np.asarray(y, dtype=object))
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if y.isna().any():
        raise ValueError("the target has missing values; drop those rows first")
    counts = y.value_counts()
    if len(counts) < 2:
        raise ValueError("the target needs at least two classes")
    classes = [_json_label(c) for c in sorted(counts.index.tolist())]
    class_counts = {str(c): int(counts[c]) for c in classes}
    plan = plan_features(X, spec.column_types, spec.column_overrides)
    leaks = detect_leaks(X, y.to_numpy(), plan, classes, seed=seed)
    for column in plan["columns"]:
        if column["name"] in leaks:
            column["dropped"] = "leak"
    method = "validation_set" if has_validation_set else spec.validation
    if method == "validation_set" and not has_validation_set:
        raise ValueError("validation is validation_set but no validation data was given")
    validation = choose_validation(
        len(X),
        int(counts.min()),
        method=method,
        n_folds=spec.n_folds,
        holdout_fraction=spec.holdout_fraction,
        seed=seed,
    )
    ratio = counts.min() / counts.max()
    if spec.class_weighting == "balanced":
        class_weight = "balanced"
    elif spec.class_weighting == "auto":
        # Weighting helps metrics that count every class equally; it only blurs probabilities
        # (AUC, log loss, accuracy), so "auto" applies it for balanced accuracy or severe imbalance.
        severe = ratio < 0.05 and spec.primary_metric in ("f1_weighted", "average_precision_weighted")
        class_weight = "balanced" if spec.primary_metric == "balanced_accuracy" or severe else None
    else:
        class_weight = None
    if validation["method"] == "cv":
        n_train = len(X) * (validation["n_folds"] - 1) // validation["n_folds"]
    elif validation["method"] == "holdout":
        n_train = int(len(X) * (1 - validation["fraction"]))
    else:
        n_train = len(X)
    algorithms, skipped = _affordable_algorithms(spec, n_train)
    guardrails = run_guardrails(
        plan=plan, class_counts=class_counts, class_weight=class_weight, validation=validation, leaks=leaks
    )
    return {
        "n_rows": len(X),
        "n_train_rows": int(n_train),  # rows a trial trains on (a CV fold's or the holdout's training part)
        "n_columns": X.shape[1],
        "classes": classes,
        "class_counts": class_counts,
        "plan": plan,
        "validation": validation,
        "class_weight": class_weight,
        "algorithms": algorithms,
        "skipped_algorithms": skipped,
        "guardrails": guardrails,
    }


def _training_rows(validation: dict, n_rows: int) -> int:
    if validation["method"] == "cv":
        return n_rows * (validation["n_folds"] - 1) // validation["n_folds"]
    if validation["method"] == "holdout":
        return int(n_rows * (1 - validation["fraction"]))
    return n_rows


def _affordable_algorithms(spec: AutoMLSpec, n_train: int) -> tuple[list[str], dict]:
    algorithms, skipped = [], {}
    for name in check_algorithms(spec.allowed_algorithms, spec.blocked_algorithms, spec.task):
        limit = get_algorithm(name, spec.task).max_rows
        if limit is not None and n_train > limit:
            skipped[name] = f"more than {limit:,} training rows"
        else:
            algorithms.append(name)
    if not algorithms:
        raise ValueError(f"no allowed algorithm handles {n_train:,} training rows: {skipped}")
    return algorithms, skipped


def _regression_setup(
    spec: AutoMLSpec, X: pd.DataFrame, y, seed: int, has_validation_set: bool, dropped_target_rows: int
) -> dict:
    y = pd.Series(pd.to_numeric(pd.Series(np.asarray(y)), errors="coerce"), dtype=np.float64)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if y.isna().any():
        raise ValueError("the target has missing or non-numeric values; drop those rows first")
    if len(y) < 10:
        raise ValueError(f"a regression needs at least 10 rows with a target; there are {len(y)}")
    if y.nunique() < 2:
        raise ValueError(f"the target is constant (every row is {y.iloc[0]:g}): there is nothing to predict")
    target = target_profile(y)
    if spec.primary_metric == "mape" and target["zeros"]:
        raise ValueError(f"MAPE divides by the target, which is 0 in {target['zeros']:,} rows: choose another metric")
    transform = suggest_target_transform(target)
    plan = plan_features(X, spec.column_types, spec.column_overrides)
    leaks = detect_leaks(X, y.to_numpy(), plan, [], seed=seed, task=REGRESSION)
    for column in plan["columns"]:
        if column["name"] in leaks:
            column["dropped"] = "leak"
    method = "validation_set" if has_validation_set else spec.validation
    if method == "validation_set" and not has_validation_set:
        raise ValueError("validation is validation_set but no validation data was given")
    validation = choose_validation(
        len(X),
        len(X),
        method=method,
        n_folds=spec.n_folds,
        holdout_fraction=spec.holdout_fraction,
        seed=seed,
        stratified=False,
    )
    n_train = _training_rows(validation, len(X))
    algorithms, skipped = _affordable_algorithms(spec, n_train)
    guardrails = run_regression_guardrails(
        plan=plan,
        target=target,
        target_transform=transform,
        validation=validation,
        leaks=leaks,
        dropped_rows=dropped_target_rows,
    )
    return {
        "task": REGRESSION,
        "n_rows": len(X),
        "n_train_rows": int(n_train),
        "n_columns": X.shape[1],
        "classes": [],
        "class_counts": {},
        "target": target,
        "target_transform": transform,
        "plan": plan,
        "validation": validation,
        "class_weight": None,
        "algorithms": algorithms,
        "skipped_algorithms": skipped,
        "guardrails": guardrails,
    }


class AutoMLSearch:
    """Proposes trials (``ask``) and learns from their results (``tell``); holds no data."""

    def __init__(self, spec: AutoMLSpec, setup: dict, *, seed: int = 0):
        self.spec = spec
        self.setup = setup
        self.seed = int(seed)
        self.metric = spec.primary_metric
        self.task = setup.get("task", CLASSIFICATION)
        self.lag = 2 * spec.max_concurrent_trials - 1
        self.algorithms = list(setup["algorithms"])
        self.portfolio = portfolio_for(self.algorithms, setup["n_train_rows"], self.task)
        self.trials: list[TrialSpec] = []
        self.results: dict[int, TrialResult] = {}
        self.stop_reason: str | None = None
        # the caller's clock at its last is_done call (None before): a regression's no-improvement
        # stop waits for REGRESSION_EARLY_STOP_BUDGET_SHARE of the budget
        self.elapsed_s: float | None = None

    # --- persistence --------------------------------------------------------------------------
    def state(self) -> dict:
        """JSON state: every proposed trial and every result received."""
        return {
            "trials": [t.to_dict() for t in self.trials],
            "results": [self.results[i].to_dict() for i in sorted(self.results)],
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def restore(cls, spec: AutoMLSpec, setup: dict, state: dict, *, seed: int = 0) -> AutoMLSearch:
        search = cls(spec, setup, seed=seed)
        search.trials = [TrialSpec.from_dict(t) for t in state["trials"]]
        search.results = {r["trial_id"]: TrialResult.from_dict(r) for r in state["results"]}
        search.stop_reason = state.get("stop_reason")
        return search

    # --- ask / tell -----------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[TrialSpec]:
        """Up to ``n`` new trials; fewer (even none) while the results they depend on are pending.

        Never more than ``max_concurrent_trials`` are outstanding (proposed and not yet told).
        """
        out = []
        n = min(n, self.spec.max_concurrent_trials - len(self.pending()))
        while len(out) < n and self.stop_reason is None:
            k = len(self.trials)
            visible = k - self.lag + 1  # trial k sees the results of trials 0 .. visible-1
            if any(i not in self.results for i in range(max(visible, 0))):
                break
            reason = self._stop_rule(k, max(visible, 0))
            if reason:
                self.stop_reason = reason
                break
            trial = self._propose(k, max(visible, 0))
            if trial is None:
                self.stop_reason = "search_exhausted"
                break
            self.trials.append(trial)
            out.append(trial)
        return out

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if not 0 <= trial_id < len(self.trials):
            raise ValueError(f"unknown trial {trial_id}")
        if result.trial_id != trial_id:
            raise ValueError(f"result is for trial {result.trial_id}, not {trial_id}")
        if trial_id in self.results:
            return  # a duplicate delivery changes nothing
        self.results[trial_id] = result

    def pending(self) -> list[int]:
        return [t.trial_id for t in self.trials if t.trial_id not in self.results]

    def is_done(self, elapsed_s: float | None = None) -> bool:
        """True when the budget is spent, the threshold is met, or no trial will ever be proposed.

        ``elapsed_s`` is also kept for the next ``ask`` (a regression's no-improvement stop needs it).
        """
        if elapsed_s is not None:
            self.elapsed_s = elapsed_s
        if elapsed_s is not None and elapsed_s >= self.spec.timeout_s:
            self.stop_reason = self.stop_reason or "time_budget"
            return True
        if self._threshold_met(self.results.values()):
            self.stop_reason = self.stop_reason or "metric_threshold"
            return True
        if self.pending():
            return False
        if self.stop_reason is None:
            k = len(self.trials)
            self.stop_reason = self._stop_rule(k, k)
        return self.stop_reason is not None

    # --- views ----------------------------------------------------------------------------------
    def leaderboard(self) -> list[dict]:
        """Finished trials, best first: {trial_id, algorithm, params, origin, status, score, metrics, ...}."""
        rows = []
        for t in self.trials:
            r = self.results.get(t.trial_id)
            if r is None:
                continue
            rows.append(
                {
                    "trial_id": t.trial_id,
                    "algorithm": t.algorithm,
                    "params": t.params,
                    "origin": t.origin,
                    "target_transform": t.target_transform,
                    "status": r.status,
                    "score": r.score,
                    "metrics": r.metrics,
                    "duration_seconds": r.duration_seconds,
                    "latency_ms": r.latency_ms,
                    "error": r.error,
                }
            )
        rows.sort(key=lambda row: self._rank_key(row["score"], row["metrics"], row["trial_id"]))
        return rows

    def best_trials(self, n: int) -> list[int]:
        """Ids of the ``n`` best succeeded trials (ties broken by trial id)."""
        ok = [row for row in self.leaderboard() if row["status"] == "succeeded" and row["score"] is not None]
        return [row["trial_id"] for row in ok[:n]]

    def ensemble_library(self, max_latency_ms: float | None = None) -> list[int]:
        """Candidates for ensembles, best first: the best ``ensemble_per_algorithm`` trials of each algorithm.

        Near-identical configurations of one algorithm differ mostly by validation noise, and
        blending them overfits the validation rows (most visibly on small data); blends of
        different model kinds are what generalise, so the library keeps each algorithm's best.
        With ``max_latency_ms``, trials that score one row slower than that are left out first
        (an ensemble is never faster than its slowest member), so an algorithm is represented by
        its best trial that is fast enough.
        """
        ok = [
            row
            for row in self.leaderboard()
            if row["status"] == "succeeded"
            and row["score"] is not None
            and within_limit(row["latency_ms"], max_latency_ms)
        ]
        taken: dict[str, int] = {}
        chosen = []
        for row in ok:
            if taken.get(row["algorithm"], 0) < self.spec.ensemble_per_algorithm:
                taken[row["algorithm"]] = taken.get(row["algorithm"], 0) + 1
                chosen.append(row["trial_id"])
        return chosen

    def trial(self, trial_id: int) -> TrialSpec:
        return self.trials[trial_id]

    # --- internals ------------------------------------------------------------------------------
    def _rank_key(self, score, metrics: dict, trial_id: int) -> tuple:
        # ties on the primary metric (e.g. an AUC of 1.0) go to the lower log loss, then the older trial
        return (sort_key(self.metric, score), sort_key("log_loss", (metrics or {}).get("log_loss")), trial_id)

    def _threshold_met(self, results) -> bool:
        t = self.spec.metric_threshold
        if t is None:
            return False
        sign = DIRECTIONS[self.metric]
        return any(r.status == "succeeded" and r.score is not None and r.score * sign >= t * sign for r in results)

    def _stop_rule(self, k: int, visible: int) -> str | None:
        """Why no trial k may be proposed, judged on the results of trials 0 .. visible-1 only."""
        if k >= self.spec.max_trials:
            return "max_trials"
        seen = [self.results[i] for i in range(visible)]
        if self._threshold_met(seen):
            return "metric_threshold"
        patience = self.spec.early_stop_trials
        if patience and visible >= len(self.portfolio) + patience and self._early_stop_time_reached():
            best, best_at = None, -1
            for i, r in enumerate(seen):
                if r.status == "succeeded" and is_better(self.metric, r.score, best):
                    best, best_at = r.score, i
            if visible - 1 - max(best_at, len(self.portfolio) - 1) >= patience:
                return "no_improvement"
        return None

    def _early_stop_time_reached(self) -> bool:
        """Whether the no-improvement stop may end the search now: a classification any time; a
        regression once REGRESSION_EARLY_STOP_BUDGET_SHARE of the budget is spent, or at once when
        the caller keeps no clock (``is_done`` never got an ``elapsed_s``)."""
        if self.task != REGRESSION or self.elapsed_s is None:
            return True
        return self.elapsed_s >= REGRESSION_EARLY_STOP_BUDGET_SHARE * self.spec.timeout_s

    def _make(
        self, k: int, algorithm: str, params: dict, origin: str, target_transform: str | None = None
    ) -> TrialSpec:
        return TrialSpec(
            trial_id=k,
            algorithm=algorithm,
            params=dict(params),
            origin=origin,
            plan=self.setup["plan"],
            validation=self.setup["validation"],
            primary_metric=self.metric,
            classes=self.setup["classes"],
            class_weight=self.setup["class_weight"],
            seed=self.seed,
            time_limit_s=self.spec.trial_timeout_s,
            task=self.task,
            target_transform=target_transform,
        )

    def _propose(self, k: int, visible: int) -> TrialSpec | None:
        seen = [(self.trials[i], self.results[i]) for i in range(visible)]
        failed_algorithms = {t.algorithm for t, r in seen if r.status != "succeeded"} - {
            t.algorithm for t, r in seen if r.status == "succeeded"
        }
        # Portfolio entries are taken in order; an algorithm that has only failed so far is skipped.
        position = 0
        for t in self.trials:
            if t.origin == "portfolio":
                position = self.portfolio.index((t.algorithm, t.params)) + 1
        if self.setup.get("target_transform") and visible >= min(LOG_VARIANTS_AFTER, len(self.portfolio)):
            variant = self._log_variant(k, seen)
            if variant is not None:
                return variant
        while position < len(self.portfolio):
            algorithm, params = self.portfolio[position]
            if algorithm not in failed_algorithms:
                return self._make(k, algorithm, params, "portfolio")
            position += 1
        return self._local_step(k, seen)

    def _log_variant(self, k: int, seen: list) -> TrialSpec | None:
        """The next best trial (one per algorithm, at most LOG_VARIANTS) not yet tried on log(1 + y)."""
        ok = [(t, r) for t, r in seen if r.status == "succeeded" and r.score is not None and not t.target_transform]
        ok.sort(key=lambda tr: self._rank_key(tr[1].score, tr[1].metrics, tr[0].trial_id))
        best: dict[str, TrialSpec] = {}
        for t, _ in ok:
            best.setdefault(t.algorithm, t)
        done = {(t.algorithm, repr(sorted(t.params.items()))) for t in self.trials if t.origin == "log_target"}
        if len(done) >= LOG_VARIANTS:
            return None
        for t in list(best.values())[:LOG_VARIANTS]:
            if (t.algorithm, repr(sorted(t.params.items()))) not in done:
                return self._make(k, t.algorithm, t.params, "log_target", self.setup["target_transform"])
        return None

    def _local_step(self, k: int, seen: list) -> TrialSpec | None:
        rng = np.random.default_rng([self.seed, k])
        by_algorithm: dict[str, list] = {}
        for t, r in seen:
            by_algorithm.setdefault(t.algorithm, []).append((t, r))
        candidates = []
        for algorithm, rows in by_algorithm.items():
            ok = [(t, r) for t, r in rows if r.status == "succeeded" and r.score is not None]
            if not ok:
                continue
            best_t, best_r = min(ok, key=lambda tr: self._rank_key(tr[1].score, tr[1].metrics, tr[0].trial_id))
            # failures = search steps tried after the incumbent without beating it
            failures = sum(1 for t, _ in rows if t.trial_id > best_t.trial_id and t.origin == "search")
            step = max(INITIAL_STEP * STEP_DECAY**failures, MIN_STEP)
            dims = len(get_algorithm(algorithm, self.task).space)
            if failures >= 6 + 2 * dims:
                continue  # retired: its neighbourhood is exhausted
            candidates.append((best_r.score, algorithm, best_t, step))
        if not candidates:
            return None
        candidates.sort(key=lambda c: (sort_key(self.metric, c[0]), c[1]))
        weights = np.array([0.5**rank for rank in range(len(candidates))])
        choice = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        _, algorithm, incumbent, step = choice
        space = get_algorithm(algorithm, self.task).space
        same = incumbent.target_transform
        tried = [t.params for t in self.trials if t.algorithm == algorithm and t.target_transform == same]
        for attempt in range(20):
            unit = np.array([p.to_unit(incumbent.params[p.name]) for p in space])
            moved = unit + rng.normal(0.0, step * (1 + attempt / 5), size=len(space))
            params = dict(incumbent.params)
            params.update({p.name: p.from_unit(u) for p, u in zip(space, moved, strict=True)})
            if params not in tried:
                return self._make(k, algorithm, params, "search", incumbent.target_transform)
        return None


def estimate_refit_seconds(search: AutoMLSearch, trial_ids: list[int]) -> float:
    """Rough time to refit these trials on all rows, from their measured fit times."""
    total = 0.0
    validation = search.setup["validation"]
    for i in trial_ids:
        r = search.results[i]
        if validation["method"] == "cv":
            per_fit = r.fit_seconds / validation["n_folds"]
            total += per_fit * validation["n_folds"] / (validation["n_folds"] - 1)
        elif validation["method"] == "holdout":
            total += r.fit_seconds / (1 - validation["fraction"])
        else:
            total += r.fit_seconds
    return total if math.isfinite(total) else 0.0
