"""Build the featurizer (a scikit-learn ColumnTransformer) of a model's pipeline from the plan.

Scoring takes raw columns, so every step from raw values to model input lives in the pipeline:
``Pipeline([("featurizer", ColumnTransformer), ("estimator", ...)])``. The featurizer depends on
the algorithm's family:

* ``linear`` (logistic regression, SVMs, SGD, kNN, naive Bayes): impute with missing indicators,
  standard-scale, one-hot for low-cardinality categoricals, target encoding (cross-fitted
  ``TargetEncoder``) for high-cardinality ones, datetime parts, TF-IDF text.
* ``tree`` (random forest, extra trees, gradient boosting): impute with indicators, no scaling,
  one-hot for low-cardinality and ordinal codes for high-cardinality categoricals.
* ``boosting`` (hist gradient boosting, LightGBM): missing values left to the model, every
  categorical as ordinal codes placed first so the model treats them as native categoricals.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

from .columns import feature_columns
from .transformers import CastColumns, DatetimeParts

FAMILIES = ("linear", "tree", "boosting")
TEXT_MAX_FEATURES = {"linear": 1000, "tree": 100, "boosting": 100}
ORDINAL_MAX_CATEGORIES = 255  # HistGradientBoosting accepts at most 255 categories per feature
ONEHOT_MIN_FREQUENCY = 5  # rarer categories are pooled as "infrequent"


def _numeric_steps(strategy: str, family: str, cast: bool) -> list:
    steps = []
    if cast:
        steps.append(("cast", CastColumns(to="number")))
    if family == "linear":
        # scale first (StandardScaler ignores NaN) so that missing indicators stay 0/1
        steps.append(("scale", StandardScaler()))
    if family != "boosting":
        if strategy == "constant":
            imputer = SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True)
        else:
            imputer = SimpleImputer(strategy=strategy, add_indicator=True)
        steps.append(("impute", imputer))
    return steps


def _block(steps: list):
    if not steps:
        return "passthrough"
    return steps[0][1] if len(steps) == 1 else Pipeline(steps)


def build_featurizer(
    plan: dict, family: str, *, seed: int = 0, regression: bool = False
) -> tuple[ColumnTransformer, dict]:
    """Return (unfitted ColumnTransformer, info) for one algorithm family.

    ``regression`` makes target encoding encode a continuous target: left to guess, scikit-learn
    takes whole-number prices for hundreds of classes.

    ``info["categorical_indices"]`` lists the output columns holding ordinal-coded categoricals
    (the first columns, for the ``boosting`` family; empty otherwise).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}; got {family!r}")
    features = feature_columns(plan)
    if not features:
        raise ValueError("no usable feature columns (all were dropped or excluded)")
    transformers: list[tuple] = []
    categorical_indices: list[int] = []

    categoricals = [c for c in features if c["type"] == "categorical" or (c["type"] == "boolean" and not _numeric(c))]
    if family == "boosting":
        names = [c["name"] for c in categoricals]
        if names:
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=-1,
                encoded_missing_value=-2,  # negative codes are "missing" for HGB and LightGBM
                max_categories=ORDINAL_MAX_CATEGORIES,
            )
            transformers.append(
                ("categorical", Pipeline([("cast", CastColumns("string")), ("encode", encoder)]), names)
            )
            categorical_indices = list(range(len(names)))
    else:
        low = [c["name"] for c in categoricals if not c["high_cardinality"]]
        high = [c["name"] for c in categoricals if c["high_cardinality"]]
        if low:
            onehot = OneHotEncoder(
                handle_unknown="infrequent_if_exist", min_frequency=ONEHOT_MIN_FREQUENCY, sparse_output=False
            )
            transformers.append(("onehot", Pipeline([("cast", CastColumns("string")), ("encode", onehot)]), low))
        if high and family == "linear":
            # Cross-fitted target encoding: fit_transform never uses a row's own target.
            cv = KFold(5, shuffle=True, random_state=seed)
            target = TargetEncoder(target_type="continuous", cv=cv) if regression else TargetEncoder(cv=cv)
            steps = [("cast", CastColumns("string")), ("encode", target), ("scale", StandardScaler())]
            transformers.append(("target", Pipeline(steps), high))
        elif high:
            ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
            transformers.append(("ordinal", Pipeline([("cast", CastColumns("string")), ("encode", ordinal)]), high))

    numeric_groups: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for c in features:
        if c["type"] in ("numeric", "integer") or (c["type"] == "boolean" and _numeric(c)):
            strategy = c["impute"] if c["impute"] in ("median", "mean", "most_frequent", "constant") else "median"
            numeric_groups[(strategy, c["cast"])].append(c["name"])
    for (strategy, cast), names in sorted(numeric_groups.items()):
        label = f"numeric_{strategy}" + ("_parsed" if cast else "")
        transformers.append((label, _block(_numeric_steps(strategy, family, cast)), names))

    dates = [c["name"] for c in features if c["type"] == "datetime"]
    if dates:
        steps = [("parts", DatetimeParts())]
        if family == "linear":
            steps.append(("scale", StandardScaler()))
        if family != "boosting":
            steps.append(("impute", SimpleImputer(strategy="median", add_indicator=True)))
        transformers.append(("datetime", Pipeline(steps), dates))

    for c in features:
        if c["type"] == "text":
            tfidf = TfidfVectorizer(
                max_features=TEXT_MAX_FEATURES[family],
                sublinear_tf=True,
                dtype=np.float32,
                token_pattern=r"(?u)\b\w+\b",  # noqa: S106 - a regex, not a password
            )
            transformers.append(
                (f"text_{c['name']}", Pipeline([("cast", CastColumns("text")), ("tfidf", tfidf)]), [c["name"]])
            )

    featurizer = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return featurizer, {"categorical_indices": categorical_indices}


def _numeric(column: dict) -> bool:
    """Whether a boolean column is held as numbers (0/1) rather than words or bool dtype."""
    return column["dtype"].startswith(("int", "uint", "float", "Int", "UInt", "Float"))
