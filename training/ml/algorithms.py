"""The algorithms the search may use: estimator factories, search spaces, portfolio — one registry
for classification (``ALGORITHMS``) and one for regression (``REGRESSION_ALGORITHMS``); names are
shared where the model kind is (``random_forest`` is a forest of classifiers or of regressors).

Each algorithm has a hyperparameter space (used by the local search in ``search.py``) and the
*portfolio* lists strong, cheap configurations that the search tries first, in this order, before
it searches anywhere else. All estimators are standard scikit-learn or LightGBM classes run with
one thread and a fixed ``random_state``, so that a trial gives the same scores everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.svm import SVC, SVR, LinearSVC

from .tasks import CLASSIFICATION, REGRESSION

EARLY_STOPPING_ROUNDS = 30
EARLY_STOPPING_MIN_DELTA = 1e-4  # validation log-loss gains below this do not count
# Regression with LightGBM: a squared-error curve on a few held-out rows is noisy and keeps
# falling slowly for hundreds of rounds, so 30 rounds without a gain stopped early (on concrete and
# computers, 100 rounds gave a 1-2 % lower cross-validated RMSE). Its gains are in the target's
# squared units, where no fixed minimum means anything: every gain counts. LightGBM keeps only the
# best rounds, so the wait costs fitting time only.
REGRESSION_EARLY_STOPPING_ROUNDS = 100
REGRESSION_EARLY_STOPPING_MIN_DELTA = 0.0
MAX_BOOSTING_ROUNDS = 3000


def early_stopping_rounds(task: str) -> int:
    """Rounds without a validation gain after which LightGBM stops for this task (HistGradientBoosting:
    always EARLY_STOPPING_ROUNDS)."""
    return REGRESSION_EARLY_STOPPING_ROUNDS if task == REGRESSION else EARLY_STOPPING_ROUNDS


def early_stopping_min_delta(task: str) -> float:
    """The smallest validation gain that counts as one for a booster of this task."""
    return REGRESSION_EARLY_STOPPING_MIN_DELTA if task == REGRESSION else EARLY_STOPPING_MIN_DELTA


@dataclass(frozen=True)
class Param:
    """One hyperparameter: ``kind`` is "float", "int" or "choice"; ``log`` searches in log scale."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple = ()

    def to_unit(self, value) -> float:
        """Map a value into [0, 1] (choices map to their index, spread over [0, 1])."""
        if self.kind == "choice":
            return self.choices.index(value) / max(len(self.choices) - 1, 1)
        lo, hi, v = self.low, self.high, float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, self.low))
        return min(max((v - lo) / (hi - lo), 0.0), 1.0)

    def from_unit(self, u: float):
        u = min(max(u, 0.0), 1.0)
        if self.kind == "choice":
            return self.choices[int(round(u * (len(self.choices) - 1)))]
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        v = lo + u * (hi - lo)
        v = math.exp(v) if self.log else v
        if self.kind == "int":
            return int(round(v))
        return float(f"{v:.4g}")  # short, JSON-friendly, and identical on every machine


@dataclass(frozen=True)
class Algorithm:
    name: str
    family: str  # featurizer family: linear, tree or boosting
    space: tuple[Param, ...]
    max_rows: int | None = None  # skipped on larger training sets (too slow or too big)
    supports_class_weight: bool = True
    early_stopping: bool = False  # boosting rounds chosen by early stopping (see trial.fit_pipeline)
    task: str = CLASSIFICATION
    # regression: fit on a standardised target (linear models and SVR have penalties and an
    # epsilon in the target's units, which a house price of 1e5 would make meaningless)
    scale_target: bool = False

    def make(self, params: dict, *, seed: int, class_weight: str | None, categorical_indices=()):
        """An unfitted estimator for ``params``: every hyperparameter of the space must be given;
        any other key is one of the estimator's own parameters (a hand-made train job sets them)."""
        cw = class_weight if self.supports_class_weight else None
        known = {p.name for p in self.space} | {"n_estimators"}
        extras = {k: v for k, v in params.items() if k not in known}
        factories = _REGRESSION_FACTORIES if self.task == REGRESSION else _FACTORIES
        estimator = factories[self.name](
            {k: v for k, v in params.items() if k in known}, seed, cw, list(categorical_indices)
        )
        return estimator.set_params(**extras) if extras else estimator

    def defaults(self) -> dict:
        """The algorithm's first portfolio configuration: a complete, strong starting point."""
        portfolio = REGRESSION_PORTFOLIO if self.task == REGRESSION else PORTFOLIO
        return dict(next(params for name, params in portfolio if name == self.name))


def _logistic(p, seed, cw, cats):
    return LogisticRegression(C=p["C"], max_iter=2000, class_weight=cw, random_state=seed)


def _forest(cls, *, classifier: bool):
    def make(p, seed, cw, cats):
        # squared error is the one regression criterion worth trying; class weights are a classifier's
        task_args = dict(criterion=p["criterion"], class_weight=cw) if classifier else {}
        return cls(
            n_estimators=p["n_estimators"],
            max_features=p["max_features"],
            min_samples_leaf=p["min_samples_leaf"],
            n_jobs=1,
            random_state=seed,
            **task_args,
        )

    return make


def _gradient_boosting(cls):
    def make(p, seed, cw, cats):
        return cls(
            n_estimators=p["n_estimators"],
            learning_rate=p["learning_rate"],
            max_depth=p["max_depth"],
            subsample=p["subsample"],
            min_samples_leaf=p["min_samples_leaf"],
            random_state=seed,
        )

    return make


def _hist_gradient_boosting(cls, *, classifier: bool):
    def make(p, seed, cw, cats):
        task_args = dict(class_weight=cw) if classifier else dict(loss="squared_error")
        return cls(
            learning_rate=p["learning_rate"],
            max_iter=p.get("n_estimators", MAX_BOOSTING_ROUNDS),
            max_leaf_nodes=p["max_leaf_nodes"],
            min_samples_leaf=p["min_samples_leaf"],
            l2_regularization=p["l2_regularization"],
            max_features=p["max_features"],
            categorical_features=cats or None,
            early_stopping="n_estimators" not in p,  # then trial.fit_pipeline passes held-out rows (X_val)
            # the classification patience for both tasks: a histogram booster keeps every round
            # it boosted (its validated model carries the patience's extra rounds), and its ONNX
            # conversion takes about 0.06 s a round (txhousing: 670 rounds, 38 s)
            n_iter_no_change=EARLY_STOPPING_ROUNDS,
            tol=EARLY_STOPPING_MIN_DELTA,
            random_state=seed,
            **task_args,
        )

    return make


def _lightgbm(cls, *, classifier: bool):
    def make(p, seed, cw, cats):
        # a regressor's l2 objective: early stopping watches the validation l2
        task_args = dict(class_weight=cw) if classifier else dict(objective="regression")
        return cls(
            n_estimators=p.get("n_estimators", MAX_BOOSTING_ROUNDS),
            learning_rate=p["learning_rate"],
            num_leaves=p["num_leaves"],
            min_child_samples=p["min_child_samples"],
            colsample_bytree=p["colsample_bytree"],
            subsample=p["subsample"],
            subsample_freq=1 if p["subsample"] < 1 else 0,
            reg_lambda=p["reg_lambda"],
            random_state=seed,
            n_jobs=1,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
            **task_args,
        )

    return make


def _knn(cls):
    def make(p, seed, cw, cats):
        return cls(n_neighbors=p["n_neighbors"], weights=p["weights"], n_jobs=1)

    return make


def _svc(p, seed, cw, cats):
    return SVC(C=p["C"], kernel="rbf", gamma="scale", probability=True, class_weight=cw, random_state=seed)


def _linear_svm(p, seed, cw, cats):
    svm = LinearSVC(C=p["C"], class_weight=cw, random_state=seed, max_iter=5000)
    return CalibratedClassifierCV(svm, method="sigmoid", cv=3, ensemble=False)


def _naive_bayes(p, seed, cw, cats):
    return GaussianNB(var_smoothing=p["var_smoothing"])


def _sgd(p, seed, cw, cats):
    return SGDClassifier(
        loss=p["loss"],
        alpha=p["alpha"],
        penalty="l2",
        max_iter=2000,
        tol=1e-4,
        class_weight=cw,
        random_state=seed,
    )


_FACTORIES = {
    "logistic_regression": _logistic,
    "random_forest": _forest(RandomForestClassifier, classifier=True),
    "extra_trees": _forest(ExtraTreesClassifier, classifier=True),
    "gradient_boosting": _gradient_boosting(GradientBoostingClassifier),
    "hist_gradient_boosting": _hist_gradient_boosting(HistGradientBoostingClassifier, classifier=True),
    "lightgbm": _lightgbm(LGBMClassifier, classifier=True),
    "knn": _knn(KNeighborsClassifier),
    "svc": _svc,
    "linear_svm": _linear_svm,
    "naive_bayes": _naive_bayes,
    "sgd": _sgd,
}

_FOREST_SPACE = (
    Param("n_estimators", "int", 50, 1000, log=True),
    Param("max_features", "float", 0.05, 1.0, log=True),
    Param("min_samples_leaf", "int", 1, 30, log=True),
    Param("criterion", "choice", choices=("gini", "entropy")),
)

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("logistic_regression", "linear", (Param("C", "float", 1e-3, 100.0, log=True),)),
        Algorithm("random_forest", "tree", _FOREST_SPACE),
        Algorithm("extra_trees", "tree", _FOREST_SPACE),
        Algorithm(
            "gradient_boosting",
            "tree",
            (
                Param("n_estimators", "int", 30, 500, log=True),
                Param("learning_rate", "float", 0.01, 0.3, log=True),
                Param("max_depth", "int", 2, 8),
                Param("subsample", "float", 0.5, 1.0),
                Param("min_samples_leaf", "int", 1, 50, log=True),
            ),
            max_rows=20_000,
            supports_class_weight=False,
        ),
        Algorithm(
            "hist_gradient_boosting",
            "boosting",
            (
                Param("learning_rate", "float", 0.01, 0.3, log=True),
                Param("max_leaf_nodes", "int", 4, 255, log=True),
                Param("min_samples_leaf", "int", 2, 200, log=True),
                Param("l2_regularization", "float", 1e-3, 10.0, log=True),
                Param("max_features", "float", 0.3, 1.0),
            ),
            early_stopping=True,
        ),
        Algorithm(
            "lightgbm",
            "boosting",
            (
                Param("learning_rate", "float", 0.01, 0.3, log=True),
                Param("num_leaves", "int", 4, 255, log=True),
                Param("min_child_samples", "int", 2, 200, log=True),
                Param("colsample_bytree", "float", 0.3, 1.0),
                Param("subsample", "float", 0.5, 1.0),
                Param("reg_lambda", "float", 1e-3, 10.0, log=True),
            ),
            early_stopping=True,
        ),
        Algorithm(
            "knn",
            "linear",
            (
                Param("n_neighbors", "int", 3, 100, log=True),
                Param("weights", "choice", choices=("uniform", "distance")),
            ),
            max_rows=50_000,
            supports_class_weight=False,
        ),
        Algorithm("svc", "linear", (Param("C", "float", 1e-2, 100.0, log=True),), max_rows=8_000),
        Algorithm("linear_svm", "linear", (Param("C", "float", 1e-4, 10.0, log=True),), max_rows=200_000),
        Algorithm(
            "naive_bayes",
            "linear",
            (Param("var_smoothing", "float", 1e-12, 1e-1, log=True),),
            supports_class_weight=False,
        ),
        Algorithm(
            "sgd",
            "linear",
            (
                Param("alpha", "float", 1e-6, 1e-1, log=True),
                Param("loss", "choice", choices=("log_loss", "modified_huber")),
            ),
        ),
    )
}

_LGBM = dict(colsample_bytree=0.8, subsample=0.8, reg_lambda=1e-3)
_HGB = dict(l2_regularization=1e-3, max_features=1.0)
_FOREST = dict(criterion="gini")

# The portfolio: strong configurations, tried in this order before any search, chosen to be good
# defaults across data sets and diverse enough to blend well. Logistic regression comes first
# because it is the cheapest useful model (the first result arrives fast); gradient boosting
# follows because it is the strongest family on tabular data, so that a short budget on large
# data is spent on it first.
PORTFOLIO: tuple[tuple[str, dict], ...] = (
    ("logistic_regression", dict(C=1.0)),
    ("lightgbm", dict(learning_rate=0.1, num_leaves=31, min_child_samples=20, **_LGBM)),
    ("hist_gradient_boosting", dict(learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=20, **_HGB)),
    (
        "lightgbm",
        dict(
            learning_rate=0.05, num_leaves=15, min_child_samples=10, colsample_bytree=0.5, subsample=0.8, reg_lambda=1.0
        ),
    ),
    ("random_forest", dict(n_estimators=200, max_features=0.3, min_samples_leaf=1, **_FOREST)),
    ("extra_trees", dict(n_estimators=200, max_features=0.5, min_samples_leaf=2, **_FOREST)),
    (
        "lightgbm",
        dict(
            learning_rate=0.05, num_leaves=63, min_child_samples=5, colsample_bytree=0.7, subsample=0.9, reg_lambda=0.1
        ),
    ),
    ("naive_bayes", dict(var_smoothing=1e-9)),
    ("logistic_regression", dict(C=0.1)),
    ("knn", dict(n_neighbors=25, weights="distance")),
    ("svc", dict(C=1.0)),
    (
        "hist_gradient_boosting",
        dict(learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10, l2_regularization=1.0, max_features=0.5),
    ),
    ("gradient_boosting", dict(n_estimators=100, learning_rate=0.1, max_depth=3, subsample=0.8, min_samples_leaf=5)),
    ("random_forest", dict(n_estimators=300, max_features=0.6, min_samples_leaf=3, criterion="entropy")),
    ("extra_trees", dict(n_estimators=300, max_features=1.0, min_samples_leaf=5, criterion="entropy")),
    ("sgd", dict(alpha=1e-4, loss="modified_huber")),
    ("linear_svm", dict(C=0.1)),
    ("logistic_regression", dict(C=10.0)),
    (
        "lightgbm",
        dict(
            learning_rate=0.1, num_leaves=4, min_child_samples=40, colsample_bytree=0.5, subsample=0.7, reg_lambda=5.0
        ),
    ),
    ("knn", dict(n_neighbors=7, weights="uniform")),
)


# --- Regression ----------------------------------------------------------------------------------
def _linear_regressor(cls, **fixed):
    def make(p, seed, cw, cats):
        kwargs = {k: p[k] for k in ("alpha", "l1_ratio") if k in p}
        if cls is not Ridge:
            kwargs.update(max_iter=5000, random_state=seed)
        return cls(**kwargs, **fixed)

    return make


def _svr(p, seed, cw, cats):
    # epsilon is in standard deviations of the target: the trial scales the target (scale_target)
    return SVR(C=p["C"], epsilon=p["epsilon"], kernel="rbf", gamma="scale")


_REGRESSION_FACTORIES = {
    "ridge": _linear_regressor(Ridge),
    "lasso": _linear_regressor(Lasso),
    "elastic_net": _linear_regressor(ElasticNet),
    "random_forest": _forest(RandomForestRegressor, classifier=False),
    "extra_trees": _forest(ExtraTreesRegressor, classifier=False),
    "gradient_boosting": _gradient_boosting(GradientBoostingRegressor),
    "hist_gradient_boosting": _hist_gradient_boosting(HistGradientBoostingRegressor, classifier=False),
    "lightgbm": _lightgbm(LGBMRegressor, classifier=False),
    "knn": _knn(KNeighborsRegressor),
    "svr": _svr,
}

_FOREST_REGRESSOR_SPACE = _FOREST_SPACE[:3]  # no criterion: squared error is the one worth trying
# One label per algorithm name, whichever task it serves.
ALGORITHM_LABELS = {
    "logistic_regression": "Logistic regression",
    "ridge": "Ridge",
    "lasso": "Lasso",
    "elastic_net": "Elastic net",
    "random_forest": "Random forest",
    "extra_trees": "Extra trees",
    "gradient_boosting": "Gradient boosting",
    "hist_gradient_boosting": "Histogram gradient boosting",
    "lightgbm": "LightGBM",
    "knn": "k-nearest neighbours",
    "svc": "Support vector machine (SVC)",
    "svr": "Support vector regression (SVR)",
    "linear_svm": "Linear SVM",
    "naive_bayes": "Naive Bayes",
    "sgd": "Stochastic gradient descent",
}
_BY_NAME = {a.name: a for a in ALGORITHMS.values()}
REGRESSION_ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("ridge", "linear", (Param("alpha", "float", 1e-3, 100.0, log=True),), scale_target=True),
        Algorithm("lasso", "linear", (Param("alpha", "float", 1e-4, 10.0, log=True),), scale_target=True),
        Algorithm(
            "elastic_net",
            "linear",
            (Param("alpha", "float", 1e-4, 10.0, log=True), Param("l1_ratio", "float", 0.05, 0.95)),
            scale_target=True,
        ),
        Algorithm("random_forest", "tree", _FOREST_REGRESSOR_SPACE),
        Algorithm("extra_trees", "tree", _FOREST_REGRESSOR_SPACE),
        Algorithm("gradient_boosting", "tree", _BY_NAME["gradient_boosting"].space, max_rows=20_000),
        Algorithm("hist_gradient_boosting", "boosting", _BY_NAME["hist_gradient_boosting"].space, early_stopping=True),
        Algorithm("lightgbm", "boosting", _BY_NAME["lightgbm"].space, early_stopping=True),
        Algorithm("knn", "linear", _BY_NAME["knn"].space, max_rows=50_000),
        # kernel SVR is quadratic or worse in rows: past ~10k rows it takes minutes
        Algorithm(
            "svr",
            "linear",
            (Param("C", "float", 1e-2, 100.0, log=True), Param("epsilon", "float", 0.01, 0.5, log=True)),
            max_rows=10_000,
            scale_target=True,
        ),
    )
}
REGRESSION_ALGORITHMS = {
    name: Algorithm(**{**a.__dict__, "task": REGRESSION, "supports_class_weight": False})
    for name, a in REGRESSION_ALGORITHMS.items()
}

# The regression portfolio, in the same spirit as PORTFOLIO: the cheapest useful model first
# (ridge on a standardised target), then boosting, forests, and diverse others for blending.
# Regression boosting does best with many small trees whose leaves may hold a few rows: FLAML's
# meta-learned regression defaults and its winning XGBoost configurations have small
# min_child_weight and a learning rate of 0.05 or less, and on the training parts of concrete and
# computers (cross-validated) 8-16 leaves of at least 3 rows at 0.05 beat 31 leaves of 20 rows
# by 2-5 % RMSE. Those come second and seventh, so a short budget reaches them early.
_LGBM_SMALL_LEAVES = dict(min_child_samples=3, colsample_bytree=0.7, subsample=0.8, reg_lambda=1.0)
REGRESSION_PORTFOLIO: tuple[tuple[str, dict], ...] = (
    ("ridge", dict(alpha=1.0)),
    ("lightgbm", dict(learning_rate=0.05, num_leaves=16, **_LGBM_SMALL_LEAVES)),
    ("lightgbm", dict(learning_rate=0.1, num_leaves=31, min_child_samples=20, **_LGBM)),
    ("hist_gradient_boosting", dict(learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=20, **_HGB)),
    ("random_forest", dict(n_estimators=200, max_features=0.5, min_samples_leaf=1)),
    ("extra_trees", dict(n_estimators=200, max_features=0.7, min_samples_leaf=2)),
    ("lightgbm", dict(learning_rate=0.05, num_leaves=8, **_LGBM_SMALL_LEAVES)),
    ("elastic_net", dict(alpha=0.01, l1_ratio=0.5)),
    ("svr", dict(C=1.0, epsilon=0.1)),
    ("knn", dict(n_neighbors=10, weights="distance")),
    ("gradient_boosting", dict(n_estimators=100, learning_rate=0.1, max_depth=3, subsample=0.8, min_samples_leaf=5)),
    (
        "lightgbm",
        dict(
            learning_rate=0.05, num_leaves=63, min_child_samples=5, colsample_bytree=0.7, subsample=0.9, reg_lambda=0.1
        ),
    ),
    ("lasso", dict(alpha=0.001)),
    (
        "hist_gradient_boosting",
        dict(learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10, l2_regularization=1.0, max_features=0.5),
    ),
    ("random_forest", dict(n_estimators=300, max_features=1.0, min_samples_leaf=3)),
    ("ridge", dict(alpha=10.0)),
    ("svr", dict(C=10.0, epsilon=0.05)),
    ("knn", dict(n_neighbors=25, weights="uniform")),
)


def registry(task: str = CLASSIFICATION) -> dict[str, Algorithm]:
    """The algorithms of a task, by name."""
    return REGRESSION_ALGORITHMS if task == REGRESSION else ALGORITHMS


def get_algorithm(name: str, task: str = CLASSIFICATION) -> Algorithm:
    return registry(task)[name]


def algorithms_for(task: str) -> dict[str, str]:
    """{name: label} of the algorithms of a task, in registry order (for forms and the API)."""
    return {name: ALGORITHM_LABELS.get(name, name) for name in registry(task)}


FOREST_TREE_BUDGET = 4_000_000  # trees x training rows: larger data sets get fewer portfolio trees
LARGE_ROWS = 20_000


def portfolio_for(algorithms: list[str], n_train_rows: int, task: str = CLASSIFICATION) -> list[tuple[str, dict]]:
    """The portfolio for this run: allowed algorithms only, made affordable on large data.

    A forest's cost grows with trees x rows; above ``FOREST_TREE_BUDGET`` the portfolio's forests
    start smaller (never below 50 trees). Boosting on more than ``LARGE_ROWS`` rows starts at a
    learning rate of at least 0.1. The search may move to costlier settings if that pays.
    """
    out = []
    algos = registry(task)
    for name, params in REGRESSION_PORTFOLIO if task == REGRESSION else PORTFOLIO:
        if name not in algorithms:
            continue
        if name in ("random_forest", "extra_trees"):
            cap = max(50, FOREST_TREE_BUDGET // max(n_train_rows, 1))
            params = {**params, "n_estimators": min(params["n_estimators"], cap)}
        if algos[name].early_stopping and n_train_rows > LARGE_ROWS:
            # slow learning rates need thousands of rounds on large data: start affordable
            params = {**params, "learning_rate": max(params["learning_rate"], 0.1)}
        if (name, params) not in out:
            out.append((name, params))
    return out


def check_algorithms(allowed, blocked, task: str = CLASSIFICATION) -> list[str]:
    """The algorithm names the search may use, in registry order; raises ValueError on unknown names."""
    algos = registry(task)
    for names, label in ((allowed, "allowed_algorithms"), (blocked, "blocked_algorithms")):
        unknown = sorted(set(names or ()) - set(algos))
        if unknown:
            raise ValueError(f"{label}: unknown algorithms {unknown}; known: {sorted(algos)}")
    chosen = [a for a in algos if (not allowed or a in allowed) and a not in set(blocked or ())]
    if not chosen:
        raise ValueError("allowed_algorithms minus blocked_algorithms leaves no algorithm")
    return chosen
