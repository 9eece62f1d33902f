"""What the ONNX export needs to know about a fitted model before converting it.

* ``preflight(model)``: the reasons known up front why a model cannot be converted (a part
  without a converter, hard voting, custom text tokens...), found by walking the model in
  microseconds, so that such a model is refused at once instead of after a slow conversion.
* ``column_roles(model)``: how the model reads each raw column ("label", "text", "datetime",
  "number" or "raw"), which decides the ONNX input type of the column.
* ``prepare(model, aliases)``: a shallow-rebuilt copy that skl2onnx can convert: the studio's
  ``CastColumns`` steps dropped (the feed already has the cast types), ``FrozenEstimator``
  wrappers unwrapped, every ensemble member a Pipeline (whose converter casts its probabilities
  to the declared type), and the ColumnTransformers' column names replaced by the ONNX input
  aliases (skl2onnx finds a column's input by name, and it rewrites names that are not
  identifiers — "mean radius", "od280/od315", "größe" — so the real names are put back on the
  graph's inputs after conversion).

Both ensemble layouts the studio makes are handled: a voting or stacking ensemble of full member
pipelines (each with its own featurizer, possibly ``FrozenEstimator``-wrapped), and one featurizer
shared by plain members, ``Pipeline(featurizer, VotingClassifier(estimators))``. Regressors
take the same paths (``VotingRegressor``, ``StackingRegressor``); a ``TransformedTargetRegressor``
is looked through to its fitted regressor, and converts when its target transform is none,
log1p/expm1 or a standard scaling (``target_transform``).
"""

from __future__ import annotations

import copy

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch

ENSEMBLES = ("VotingClassifier", "StackingClassifier", "VotingRegressor", "StackingRegressor")
TARGET_TRANSFORMED = "TransformedTargetRegressor"
# scikit-learn's word patterns, as RE2 (onnxruntime's Tokenizer) spells them: Python's Unicode \w is
# a letter, a number or "_".
TOKEN_PATTERNS = {r"(?u)\b\w+\b": r"[\p{L}\p{N}_]+", r"(?u)\b\w\w+\b": r"[\p{L}\p{N}_]{2,}"}


def _name(model) -> str:
    return type(model).__name__


def _is_cast_columns(step) -> bool:
    return _name(step) == "CastColumns" and type(step).__module__.endswith("transformers")


def _is_datetime_parts(step) -> bool:
    return _name(step) == "DatetimeParts" and type(step).__module__.endswith("transformers")


def _is_pipeline(model) -> bool:
    return isinstance(model, Pipeline)


def _is_column_transformer(model) -> bool:
    return isinstance(model, ColumnTransformer)


def _unfrozen(model):
    while _name(model) == "FrozenEstimator":
        model = model.estimator
    return model


def components(model):
    """Every estimator and transformer inside ``model`` (Pipelines, ColumnTransformers, ensembles
    and FrozenEstimator wrappers are looked through and also yielded)."""
    stack = [model]
    while stack:
        item = _unfrozen(stack.pop())
        if isinstance(item, str):
            continue
        yield item
        if _is_pipeline(item):
            stack.extend(step for _, step in item.steps)
        elif _is_column_transformer(item):
            stack.extend(step for _, step, _ in item.transformers_)
        elif _name(item) in ENSEMBLES:
            stack.extend(getattr(item, "estimators_", []))
            if getattr(item, "final_estimator_", None) is not None:
                stack.append(item.final_estimator_)
        elif _name(item) == TARGET_TRANSFORMED and hasattr(item, "regressor_"):
            stack.append(item.regressor_)


def is_regressor(model) -> bool:
    """Whether the model predicts numbers: no ``predict_proba`` and no ``classes_`` (a scikit-learn
    regressor, a pipeline ending in one, or an ensemble of them)."""
    return hasattr(model, "predict") and not hasattr(model, "predict_proba") and not hasattr(model, "classes_")


def target_transform(model) -> str | None:
    """A TransformedTargetRegressor's target transform: "identity", "log1p" (inverse expm1),
    "standard" (a fitted ``StandardScaler``: the training of linear models and SVR on a
    standardised target) or None for any other (not converted)."""
    if getattr(model, "transformer", None) is not None:  # a transformer object rather than functions
        fitted = getattr(model, "transformer_", None)
        return "standard" if _name(fitted) == "StandardScaler" else None
    func, inverse = getattr(model, "func", None), getattr(model, "inverse_func", None)
    if func is None and inverse is None:
        return "identity"
    if func is np.log1p and inverse is np.expm1:
        return "log1p"
    return None


def datetime_parts_classes(model) -> set[type]:
    """The classes of the studio's ``DatetimeParts`` steps inside ``model``, recognised by name like
    ``CastColumns``: the class stays in ``training/ml/transformers.py`` (saved model files name it by
    that path) and the model format imports nothing from training."""
    return {type(item) for item in components(model) if _is_datetime_parts(item)}


def contains_lightgbm(model) -> bool:
    return any(type(item).__module__.startswith("lightgbm") for item in components(model))


# --- Refusals known up front ---------------------------------------------------------------------
def _known_types() -> set:
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx._supported_operators import sklearn_operator_name_map

    return set(sklearn_operator_name_map)


def preflight(model) -> str | None:
    """A readable reason why ``model`` cannot become ONNX, when it shows without converting."""
    known = _known_types()
    for item in components(model):
        kind = _name(item)
        if _is_pipeline(item) or _is_column_transformer(item) or _is_cast_columns(item) or _is_datetime_parts(item):
            continue
        if kind == "VotingClassifier" and item.voting != "soft":
            return "hard-voting ensembles have no probabilities to convert"
        if kind == TARGET_TRANSFORMED:
            if target_transform(item) is None:
                return "target transforms other than log1p/expm1 and standard scaling are not converted"
            continue
        if kind == "StackingRegressor" and getattr(item, "passthrough", False):
            return "stacking with passthrough columns is not converted"
        if kind == "StackingClassifier" and (
            getattr(item, "passthrough", False) or any(m != "predict_proba" for m in item.stack_method_)
        ):
            return "stacking over decision scores or with passthrough columns is not converted"
        if kind == "TfidfVectorizer" and (
            item.analyzer != "word"
            or item.tokenizer is not None
            or item.preprocessor is not None
            or item.strip_accents is not None
            or not item.lowercase
            or item.token_pattern not in TOKEN_PATTERNS
        ):
            return "text features with custom tokens, accents or case handling are not converted"
        if type(item) not in known and not type(item).__module__.startswith("lightgbm"):
            return f"the model contains {kind}, which has no ONNX converter"
    return None


# --- How each column is read ---------------------------------------------------------------------
def _first_step(step):
    while _is_pipeline(step):
        step = step.steps[0][1]
    return step


def _role(step) -> str | None:
    first = _first_step(step)
    if isinstance(first, str):
        return None if first == "drop" else "raw"
    if _is_cast_columns(first):
        return {"string": "label", "text": "text", "number": "number"}[first.to]
    if _is_datetime_parts(first):
        return "datetime"
    return "raw"


def column_roles(model) -> dict[str, set[str]]:
    """{column: roles} for the columns the model's ColumnTransformers read (by name)."""
    roles: dict[str, set[str]] = {}
    for item in components(model):
        if not _is_column_transformer(item):
            continue
        for _, step, cols in item.transformers_:
            role = _role(step)
            if role is None:
                continue
            for col in [cols] if isinstance(cols, str) else list(cols):
                if isinstance(col, str):
                    roles.setdefault(col, set()).add(role)
    return roles


# --- A convertible copy --------------------------------------------------------------------------
def _strip_casts(transformer):
    if _is_cast_columns(transformer):
        return "passthrough"
    if _name(transformer) == "TfidfVectorizer":
        return _lowercased_by_feed(transformer)
    if _is_pipeline(transformer):
        steps = [
            (name, _lowercased_by_feed(step) if _name(step) == "TfidfVectorizer" else step)
            for name, step in transformer.steps
            if not _is_cast_columns(step)
        ]
        if not steps:
            return "passthrough"
        if len(steps) == 1:
            return steps[0][1]
        clone = copy.copy(transformer)
        clone.steps = steps
        return clone
    return transformer


def _lowercased_by_feed(tfidf):
    # the "text" feed lower-cases (str.lower, as scikit-learn does): onnxruntime's StringNormalizer
    # needs a named locale that servers may not have
    clone = copy.copy(tfidf)
    clone.lowercase = False
    return clone


def text_options(prepared) -> dict:
    """skl2onnx options for the TfidfVectorizers of a prepared model: the RE2 token pattern."""
    return {
        id(item): {"tokenexp": TOKEN_PATTERNS[item.token_pattern]}
        for item in components(prepared)
        if _name(item) == "TfidfVectorizer"
    }


# The distances onnxruntime's CDist kernel computes: skl2onnx's default for the others is a Scan
# over the training rows, one loop step per row (~1.5 ms of a 1-row request with 426 rows).
CDIST_METRICS = ("euclidean", "sqeuclidean")


def neighbour_options(prepared) -> dict:
    """skl2onnx options for the nearest-neighbour models of a prepared model: their distances to
    the training rows in one CDist node (onnxruntime's own kernel) rather than a Scan, where the
    metric allows it (measured on an Automated ML voting ensemble with a 25-neighbour member: a
    1-row request 1.79 → 0.30 ms, 100 rows 6.0 → 1.4 ms, same predictions)."""
    return {
        id(item): {"optim": "cdist"}
        for item in components(prepared)
        if _name(item) in ("KNeighborsClassifier", "KNeighborsRegressor")
        and getattr(item, "effective_metric_", None) in CDIST_METRICS
    }


def _as_pipeline(member):
    return member if _is_pipeline(member) else Pipeline([("estimator", member)])


def prepare(model, aliases: dict[str, str]):
    """A shallow-rebuilt copy of ``model`` that skl2onnx can convert (see the module docstring)."""
    model = _unfrozen(model)
    if _is_column_transformer(model):
        clone = copy.copy(model)
        clone.transformers_ = [
            (name, _strip_casts(step), _aliased(cols, aliases)) for name, step, cols in model.transformers_
        ]
        return clone
    if _is_pipeline(model):
        clone = copy.copy(model)
        clone.steps = [(name, prepare(step, aliases)) for name, step in model.steps]
        return clone
    if _name(model) in ENSEMBLES and hasattr(model, "estimators_"):
        clone = copy.copy(model)
        members = [_as_pipeline(prepare(member, aliases)) for member in model.estimators_]
        clone.estimators_ = members
        if hasattr(model, "named_estimators_"):
            names = list(model.named_estimators_)
            clone.named_estimators_ = Bunch(**dict(zip(names, members, strict=False)))
        if getattr(model, "weights", None) is not None:
            clone.weights = np.asarray(model.weights, dtype=np.float64)
        return clone
    if _name(model) == TARGET_TRANSFORMED and hasattr(model, "regressor_"):
        clone = copy.copy(model)
        clone.regressor_ = prepare(model.regressor_, aliases)
        return clone
    return model


def _aliased(cols, aliases: dict[str, str]):
    if isinstance(cols, str):
        return [aliases.get(cols, cols)]
    if callable(cols) or isinstance(cols, slice):
        return cols
    cols = list(cols)
    if all(isinstance(c, str) for c in cols):
        return [aliases.get(c, c) for c in cols]
    return cols


def final_classifier(model):
    while _is_pipeline(model):
        model = model.steps[-1][1]
    return model
