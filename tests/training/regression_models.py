"""Regression pipelines built the way Automated ML builds them (``build_featurizer`` + a regressor),
fitted on messy data: names with spaces and symbols, a date, text, a yes/no column, an ID, missing
values and a numeric target "Sale Price ($)"."""

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
    StackingRegressor,
    VotingRegressor,
)
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from training.ml.columns import plan_features
from training.ml.featurize import build_featurizer

TARGET = "Sale Price ($)"
COLUMN_TYPES = {
    "house id": "identifier",
    "floor area (m²)": "numeric",
    "n rooms": "integer",
    "district/zone": "categorical",
    "has garden?": "boolean",
    "listed on": "datetime",
    "agent notes": "text",
}


def messy_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.normal(90, 25, n).clip(20, None)
    rooms = rng.integers(1, 7, n).astype("float64")
    district = rng.choice(["north", "south", "centre ville", "östra/β"], n).astype(object)
    garden = rng.choice(["yes", "no"], n).astype(object)
    listed = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    notes = rng.choice(["bright flat", "needs work", "quiet street near park", "new kitchen", ""], n)
    frame = pd.DataFrame(
        {
            "house id": [f"h-{i:05d}" for i in range(n)],
            "floor area (m²)": area,
            "n rooms": rooms,
            "district/zone": district,
            "has garden?": garden,
            "listed on": listed,
            "agent notes": notes.astype(object),
        }
    )
    price = (
        2_000 * area
        + 8_000 * rooms
        + np.where(district == "centre ville", 60_000, 0)
        + np.where(garden == "yes", 15_000, 0)
        + rng.normal(0, 10_000, n)
    )
    for col, share in (("floor area (m²)", 0.08), ("district/zone", 0.05), ("has garden?", 0.05)):
        frame.loc[rng.random(n) < share, col] = None
    frame[TARGET] = np.round(price.clip(10_000, None), 2)
    return frame


FAMILIES = {
    "linear_regression": "linear",
    "ridge": "linear",
    "lasso": "linear",
    "elastic_net": "linear",
    "knn": "linear",
    "svr": "linear",
    "random_forest": "tree",
    "extra_trees": "tree",
    "gradient_boosting": "tree",
    "hist_gradient_boosting": "boosting",
    "lightgbm": "boosting",
}


def _estimator(name: str, cats: list):
    return {
        "linear_regression": lambda: LinearRegression(),
        "ridge": lambda: Ridge(alpha=1.0),
        "lasso": lambda: Lasso(alpha=0.01, max_iter=5_000),
        "elastic_net": lambda: ElasticNet(alpha=0.1, max_iter=5_000),
        "knn": lambda: KNeighborsRegressor(n_neighbors=5, weights="distance"),
        "svr": lambda: SVR(C=10.0, epsilon=0.1),
        "random_forest": lambda: RandomForestRegressor(n_estimators=15, max_depth=8, random_state=0),
        "extra_trees": lambda: ExtraTreesRegressor(n_estimators=15, max_depth=8, random_state=0),
        "gradient_boosting": lambda: GradientBoostingRegressor(n_estimators=30, random_state=0),
        "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(
            max_iter=30, categorical_features=cats or None, random_state=0
        ),
        "lightgbm": lambda: LGBMRegressor(n_estimators=30, num_leaves=15, min_child_samples=5, verbose=-1),
    }[name]()


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[TARGET])


def plan(frame: pd.DataFrame) -> dict:
    return plan_features(features(frame), COLUMN_TYPES)


# fitted on a standardised target, as the engine fits them (penalties and epsilon in target units)
SCALED_TARGET = ("ridge", "lasso", "elastic_net", "svr")


def unfitted(name: str, frame: pd.DataFrame, *, log_target: bool = False) -> Pipeline:
    featurizer, layout = build_featurizer(plan(frame), FAMILIES[name])
    estimator = _estimator(name, layout["categorical_indices"])
    if name in SCALED_TARGET:
        estimator = TransformedTargetRegressor(regressor=estimator, transformer=StandardScaler())
    if log_target:
        estimator = TransformedTargetRegressor(
            regressor=estimator, func=np.log1p, inverse_func=np.expm1, check_inverse=False
        )
    return Pipeline([("featurizer", featurizer), ("estimator", estimator)])


def fitted(name: str, frame: pd.DataFrame):
    """A fitted pipeline: an algorithm name of ``FAMILIES`` (linear models and SVR on a standardised
    target), "log_target" / "log_target_boosting" (ridge / HGB on log1p of the target), "voting"
    (fitted member pipelines, frozen) or "stacking" (member pipelines refitted by its
    cross-validation, a non-negative linear blend on top)."""
    X, y = features(frame), frame[TARGET]
    if name == "log_target":  # log1p around the standardised target: ridge trained on log prices
        model = unfitted("ridge", frame, log_target=True)
    elif name == "log_target_boosting":
        model = unfitted("hist_gradient_boosting", frame, log_target=True)
    elif name == "voting":  # trials' fitted pipelines, frozen, as the final job combines them
        members = [(m, FrozenEstimator(fitted(m, frame))) for m in ("log_target", "random_forest", "lightgbm")]
        model = VotingRegressor(members, weights=[0.5, 0.3, 0.2])
    elif name == "stacking":
        members = [(m, unfitted(m, frame)) for m in ("svr", "extra_trees")]
        model = StackingRegressor(members, final_estimator=LinearRegression(positive=True), cv=3)
    elif name == "lightgbm":  # categorical splits on the ordinal codes, as a trial fits it
        model = unfitted(name, frame)
        cats = _categorical_indices(frame)
        return model.fit(X, y, estimator__categorical_feature=cats or "auto")
    else:
        model = unfitted(name, frame)
    return model.fit(X, y)


def _categorical_indices(frame: pd.DataFrame) -> list:
    return build_featurizer(plan(frame), "boosting")[1]["categorical_indices"]


KINDS = (*FAMILIES, "log_target", "log_target_boosting", "voting", "stacking")
