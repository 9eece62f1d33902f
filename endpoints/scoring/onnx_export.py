"""An ONNX twin of a scikit-learn pipeline, for fast scoring — used only once it is proven equal.

``try_convert(pipeline, signature, X_sample)`` converts with skl2onnx, then runs the ONNX model in
onnxruntime on ``X_sample`` (the validation rows) *plus* probe rows derived from it (each column
set to null, each label column set to a category never seen in training) and compares with the
pipeline's ``predict_proba``: the largest absolute difference must be at most ``TOLERANCE`` (1e-5)
and the predicted labels (the most probable class) must be the same, except on rows where
scikit-learn's own top two probabilities are within ``TOLERANCE`` of each other (a near tie that
float32 rounding may break either way). Otherwise it returns ``(None, report)`` with the reason and
the model is served from its skops file.

How inputs reach the ONNX model (``onnx_feed``; the same code runs in verification and serving):
one input per signature column that the model reads, shaped ``[rows, 1]``. Numbers (numeric,
integer and 0/1 columns) go in as float64 when the converters manage a double-precision graph, else
as float32: conversion is tried in that order (``NUMERIC_PRECISIONS``) and the first attempt that
also passes the check is kept (``report["numeric_inputs"]``). Double precision matters for
HistGradientBoosting, which compares float64 values with its thresholds: in float32, values within
rounding of a threshold take the other branch — a few rows in thousands then differ by a whole
leaf. Labels, text and booleans go in as strings (booleans as ``"True"``/``"False"``, numbers as the
featurizer writes them: ``3.0`` → ``"3"``), a missing label as the string ``"nan"`` — how skl2onnx
writes the NaN category that scikit-learn encoders learn, and what our string ``SimpleImputer``
converter treats as missing. A model whose training labels include the literal string ``"nan"`` is
therefore not converted.

Adjustments made to a *copy* of the model before conversion (verification compares with the
original): the studio's ``CastColumns`` steps are dropped (the feed already has the cast types),
``FrozenEstimator`` wrappers inside voting ensembles are unwrapped. Converters passed to skl2onnx
per call (no global registration): ``SimpleImputer`` (labels whose missing marker is NaN; numbers
with ``add_indicator=True`` or with columns dropped as all-missing, which skl2onnx ignores; double
inputs, which onnxruntime's ``Imputer`` op lacks), ``OneHotEncoder`` with
``handle_unknown="infrequent_if_exist"`` (converted as "ignore"; the probe rows refuse it where
infrequent categories exist), and tree ensembles (boolean attributes that newer ``onnx`` refuses;
double-precision thresholds). With ``onnxmltools`` installed, its LightGBM converter is registered.

Not converted (falls back to skops, with the reason in ``report["reason"]`` and per attempt in
``report["attempts"]``): datetime columns (``DatetimeParts`` has no converter), text through the
featurizer's TF-IDF, LightGBM without ``onnxmltools``, stacking ensembles (skl2onnx's stacking
converter takes a single input tensor, a DataFrame gives one per column), estimators or
transformers without a converter, and anything the check finds unequal — e.g. native categorical
splits of HistGradientBoosting (the studio's "boosting" featurizer), random forests over scaled
features when the double graph does not convert.
"""

from __future__ import annotations

import copy
import hashlib
import time

import numpy as np
import pandas as pd

from .signature import Signature

TOLERANCE = 1e-5
MAX_CHECK_ROWS = 5_000
PROBE_ROWS = 20
MISSING_LABEL = "nan"
UNSEEN_LABEL = "__studio_unseen_category__"
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
# Numbers reach the model as float64 when the converters allow it (split thresholds compare as in
# scikit-learn), else as float32; the first that converts *and* verifies is kept.
NUMERIC_PRECISIONS = ("double", "float")


class ConversionRefused(Exception):
    """The model cannot be converted, for a reason worth showing to the user."""


# --- Feeding the ONNX model ----------------------------------------------------------------------
def input_kinds(signature: Signature) -> dict[str, str]:
    """ONNX input kind per signature column: "float", "string" or "bool" (a string tensor of
    "True"/"False"); datetime columns have none."""
    kinds = {}
    for spec in signature.columns:
        if spec.kind in ("number", "integer", "flag"):
            kinds[spec.name] = "float"
        elif spec.kind == "string":
            kinds[spec.name] = "string"
        elif spec.kind == "boolean":
            kinds[spec.name] = "bool"
    return kinds


def _bool_input(values: np.ndarray) -> np.ndarray:
    if values.dtype == bool:
        return np.where(values, "True", "False").astype(object).reshape(-1, 1)
    out = np.array(
        [
            MISSING_LABEL if v is not True and v is not False and not isinstance(v, np.bool_) else str(bool(v))
            for v in values
        ],
        dtype=object,
    )
    return out.reshape(-1, 1)


def _string_input(values) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    if len(values) == 1:
        v = values[0]
        return np.array([[v if isinstance(v, str) else MISSING_LABEL]], dtype=object)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = MISSING_LABEL
    return values.reshape(-1, 1)


def _double_input(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def _float_input(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 1)


def onnx_feed(columns: dict, inputs: list[tuple[str, str]]) -> dict:
    """The onnxruntime feed for validated columns (``ValidatedBatch.columns``)."""
    return {name: _FEEDERS[kind](columns[name]) for name, kind in inputs}


_FEEDERS = {"double": _double_input, "float": _float_input, "string": _string_input, "bool": _bool_input}


def make_session(onnx_bytes: bytes, *, log_severity: int = 3):
    """An onnxruntime session: CPU, one thread, sequential (many worker processes share the cores).

    Refuses models that reference external data files (an ONNX file may name paths; ours never do).
    """
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(onnx_bytes)  # parsing never reads external files
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ConversionRefused("the ONNX model references external data files")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = log_severity  # errors surface as exceptions; keep the log quiet
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def session_io(session, signature: Signature) -> tuple[list[tuple[str, str]], str]:
    """(inputs as [(column, kind)], name of the probabilities output) for a session."""
    kinds = input_kinds(signature)
    inputs = []
    for item in session.get_inputs():
        if item.name not in kinds:
            raise ConversionRefused(f"the ONNX model reads {item.name!r}, which is not a signature column")
        kind = kinds[item.name]
        if item.type == "tensor(string)" and kind in ("string", "bool"):
            inputs.append((item.name, kind))
        elif item.type in ("tensor(double)", "tensor(float)") and kind == "float":
            inputs.append((item.name, "double" if item.type == "tensor(double)" else "float"))
        else:
            raise ConversionRefused(f"the ONNX input {item.name!r} has type {item.type}")
    outputs = [o for o in session.get_outputs() if o.type in ("tensor(float)", "tensor(double)")]
    named = [o for o in outputs if o.name == "probabilities"]
    chosen = (named or outputs)[:1]
    if not chosen:
        raise ConversionRefused("the ONNX model has no probabilities output")
    return inputs, chosen[0].name


# --- Preparing a convertible copy ----------------------------------------------------------------
def _is_cast_columns(step) -> bool:
    return type(step).__name__ == "CastColumns" and type(step).__module__.endswith("transformers")


def _strip_casts(transformer):
    """The featurizer step without CastColumns (the ONNX feed already has the cast types)."""
    from sklearn.pipeline import Pipeline

    if _is_cast_columns(transformer):
        if transformer.to == "text":
            raise ConversionRefused("text columns (TF-IDF) are not converted")
        return "passthrough"
    if isinstance(transformer, Pipeline):
        steps = []
        for name, step in transformer.steps:
            if _is_cast_columns(step):
                if step.to == "text":
                    raise ConversionRefused("text columns (TF-IDF) are not converted")
                continue
            steps.append((name, step))
        if not steps:
            return "passthrough"
        if len(steps) == 1:
            return steps[0][1]
        clone = copy.copy(transformer)
        clone.steps = steps
        return clone
    return transformer


def _prepare(model):
    """A shallow-rebuilt copy of ``model`` that skl2onnx can convert (see the module docstring)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if type(model).__name__ == "FrozenEstimator":
        return _prepare(model.estimator)
    if isinstance(model, ColumnTransformer):
        clone = copy.copy(model)
        clone.transformers_ = [(name, _strip_casts(step), cols) for name, step, cols in model.transformers_]
        return clone
    if isinstance(model, Pipeline):
        clone = copy.copy(model)
        clone.steps = [(name, _prepare(step)) for name, step in model.steps]
        return clone
    if hasattr(model, "estimators_") and type(model).__name__ in ("VotingClassifier", "StackingClassifier"):
        clone = copy.copy(model)
        clone.estimators_ = [_prepare(member) for member in model.estimators_]
        if hasattr(model, "flatten_transform"):
            clone.flatten_transform = False  # only shapes transform(); skl2onnx refuses True
        if getattr(model, "weights", None) is not None:
            clone.weights = np.asarray(model.weights, dtype=np.float64)
        if hasattr(model, "named_estimators_"):
            from sklearn.utils import Bunch

            clone.named_estimators_ = Bunch(
                **{name: _prepare(member) for name, member in model.named_estimators_.items()}
            )
        return clone
    return model


def _final_classifier(model):
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


# --- Converters passed to skl2onnx for one call --------------------------------------------------
def _indicator_features(op) -> list[int]:
    indicator = getattr(op, "indicator_", None)
    return [int(i) for i in indicator.features_] if (op.add_indicator and indicator is not None) else []


def _imputer_shape_calculator():
    """skl2onnx's imputer shape, plus the missing-indicator columns (``add_indicator=True``) and
    minus the columns scikit-learn drops (all-missing in training)."""
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    def calculate(operator):
        calculate_sklearn_imputer_output_shapes(operator)
        op = operator.raw_operator
        if isinstance(operator.inputs[0].type, StringTensorType):
            return
        n, width = operator.outputs[0].type.shape
        if width is not None:
            kept = _kept_columns(op)
            width = (len(kept) if kept is not None else width) + len(_indicator_features(op))
            operator.outputs[0].type.shape = [n, width]

    return calculate


def _kept_columns(op) -> list[int] | None:
    """Columns scikit-learn keeps (None: all): it drops those whose statistic is NaN."""
    if getattr(op, "keep_empty_features", False):
        return None
    stats = np.asarray(op.statistics_, dtype=np.float64)
    if not np.isnan(stats).any():
        return None
    return [int(i) for i in np.flatnonzero(~np.isnan(stats))]


def _imputer_converter():
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto

    def convert_numbers(scope, operator, container):
        """Where(IsNaN(x), statistics, x) in the input's own precision (onnxruntime's Imputer op has
        no double kernel), with missing indicators and without the columns scikit-learn drops."""
        op = operator.raw_operator
        if not (isinstance(op.missing_values, float) and np.isnan(op.missing_values)):
            raise ConversionRefused(f"SimpleImputer with missing_values={op.missing_values!r}")
        double = isinstance(operator.inputs[0].type, DoubleTensorType)
        proto = onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT
        stats = np.asarray(op.statistics_, dtype=np.float64)
        features = _indicator_features(op)
        kept = _kept_columns(op)
        source = concatenate_variables(scope, operator.inputs, container)
        isnan = scope.get_unique_variable_name("isnan")
        container.add_node("IsNaN", [source], [isnan], name=scope.get_unique_operator_name("IsNaN"))
        fill = scope.get_unique_variable_name("fill")
        container.add_initializer(fill, proto, [1, len(stats)], np.nan_to_num(stats, nan=0.0).tolist())
        imputed = scope.get_unique_variable_name("imputed")
        container.add_node("Where", [isnan, fill, source], [imputed], name=scope.get_unique_operator_name("Where"))
        parts = [imputed]
        if kept is not None:
            index = scope.get_unique_variable_name("kept")
            container.add_initializer(index, onnx_proto.TensorProto.INT64, [len(kept)], kept)
            gathered = scope.get_unique_variable_name("imputed_kept")
            container.add_node(
                "Gather", [imputed, index], [gathered], axis=1, name=scope.get_unique_operator_name("Gather")
            )
            parts = [gathered]
        if features:
            index = scope.get_unique_variable_name("indicator_index")
            container.add_initializer(index, onnx_proto.TensorProto.INT64, [len(features)], features)
            picked = scope.get_unique_variable_name("indicator_bool")
            container.add_node(
                "Gather", [isnan, index], [picked], axis=1, name=scope.get_unique_operator_name("Gather")
            )
            indicator = scope.get_unique_variable_name("indicator")
            container.add_node("Cast", [picked], [indicator], to=proto, name=scope.get_unique_operator_name("Cast"))
            parts.append(indicator)
        container.add_node(
            "Concat", parts, [operator.outputs[0].full_name], axis=1, name=scope.get_unique_operator_name("Concat")
        )

    def convert(scope, operator, container):
        op = operator.raw_operator
        if not isinstance(operator.inputs[0].type, StringTensorType):
            return convert_numbers(scope, operator, container)
        if op.add_indicator:
            raise ConversionRefused("SimpleImputer(add_indicator=True) over labels is not converted")
        if not isinstance(op.missing_values, str):
            if op.missing_values is not None and not (
                isinstance(op.missing_values, float) and np.isnan(op.missing_values)
            ):
                raise ConversionRefused(f"SimpleImputer over labels with missing_values={op.missing_values!r}")
            clone = copy.copy(op)
            clone.missing_values = MISSING_LABEL
            clone.statistics_ = np.array(
                [MISSING_LABEL if (isinstance(v, float) and np.isnan(v)) else str(v) for v in op.statistics_],
                dtype=object,
            )
            operator.raw_operator = clone
            try:
                return convert_sklearn_imputer(scope, operator, container)
            finally:
                operator.raw_operator = op
        return convert_sklearn_imputer(scope, operator, container)

    return convert


def _onehot_converter():
    """OneHotEncoder whose unknown categories go to the infrequent column, if any, else to zeros:
    convert as "ignore" (zeros); where infrequent categories exist, the probe rows with unseen
    labels show the difference and the conversion is refused."""
    from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder

    def convert(scope, operator, container):
        op = operator.raw_operator
        if op.handle_unknown in ("infrequent_if_exist", "warn"):
            clone = copy.copy(op)
            clone.handle_unknown = "ignore"
            operator.raw_operator = clone
            try:
                return convert_sklearn_one_hot_encoder(scope, operator, container)
            finally:
                operator.raw_operator = op
        return convert_sklearn_one_hot_encoder(scope, operator, container)

    return convert


def _tree_converter(converter, *, double_thresholds: bool):
    """Wrap a tree-ensemble converter: boolean list attributes are written as ints (newer onnx
    refuses bools) and, for double inputs, thresholds are kept in double precision
    (``nodes_values_as_tensor``, ai.onnx.ml opset 3) with the float scores cast back to the double
    output skl2onnx declares. Without this, a value within float32 rounding of a split threshold
    can take the other branch: a few rows in thousands then differ by a whole leaf value."""
    import inspect

    from onnx import numpy_helper
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.proto import onnx_proto

    function = getattr(converter, "_fct", converter)
    takes_version = "op_version" in inspect.signature(function).parameters

    def convert(scope, operator, container):
        double = double_thresholds and takes_version and isinstance(operator.inputs[0].type, DoubleTensorType)
        add_node = container.add_node

        def patched(op_type, inputs, outputs, op_domain="", op_version=None, **attrs):
            for key, value in attrs.items():
                if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
                    attrs[key] = [int(v) for v in value]
            if double and op_type == "TreeEnsembleClassifier" and op_domain == "ai.onnx.ml":
                thresholds = np.asarray(attrs.pop("nodes_values"), dtype=np.float64)
                attrs["nodes_values_as_tensor"] = numpy_helper.from_array(thresholds)
                outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
                declared, scores = outputs[1], scope.get_unique_variable_name("tree_scores")
                outputs[1] = scores
                result = add_node(op_type, inputs, outputs, op_domain=op_domain, op_version=3, **attrs)
                add_node(
                    "Cast",
                    [scores],
                    [declared],
                    to=onnx_proto.TensorProto.DOUBLE,
                    name=scope.get_unique_operator_name("Cast"),
                )
                return result
            return add_node(op_type, inputs, outputs, op_domain=op_domain, op_version=op_version, **attrs)

        container.add_node = patched
        try:
            if double:
                return function(scope, operator, container, op_version=3)
            return converter(scope, operator, container)
        finally:
            del container.add_node  # back to the class's method

    return convert


def _custom_converters() -> dict:
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    converters = {SimpleImputer: _imputer_converter(), OneHotEncoder: _onehot_converter()}
    for cls in (HistGradientBoostingClassifier, RandomForestClassifier, ExtraTreesClassifier):
        converters[cls] = _tree_converter(get_converter(sklearn_operator_name_map[cls]), double_thresholds=True)
    for cls in (GradientBoostingClassifier, DecisionTreeClassifier):
        converters[cls] = _tree_converter(get_converter(sklearn_operator_name_map[cls]), double_thresholds=False)
    return converters


def _custom_shape_calculators() -> dict:
    from sklearn.impute import SimpleImputer

    return {SimpleImputer: _imputer_shape_calculator()}


def _register_lightgbm() -> bool:
    """Register onnxmltools' LightGBM converter with skl2onnx when onnxmltools is installed."""
    try:
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    except ImportError:
        return False
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    return True


def _contains_lightgbm(model) -> bool:
    stack, seen = [model], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if type(item).__module__.startswith("lightgbm"):
            return True
        for attr in ("steps", "transformers_", "estimators_", "estimator", "final_estimator_"):
            value = getattr(item, attr, None)
            if value is None or isinstance(value, str):
                continue
            if isinstance(value, list):
                for entry in value:
                    stack.extend(entry if isinstance(entry, tuple) else [entry])
            else:
                stack.append(value)
    return False


# --- Verification --------------------------------------------------------------------------------
def _probe_frame(X: pd.DataFrame, signature: Signature, used: set[str]) -> pd.DataFrame:
    """Rows derived from the sample that exercise null and unseen-category handling."""
    base = X.head(PROBE_ROWS)
    frames = []
    for spec in signature.columns:
        if spec.name not in used or spec.name not in X.columns:
            continue
        missing = base.copy()
        missing[spec.name] = pd.Series([None] * len(base), index=base.index, dtype=object)
        frames.append(missing)
        if spec.kind == "string":
            unseen = base.copy()
            unseen[spec.name] = pd.Series([UNSEEN_LABEL] * len(base), index=base.index, dtype=object)
            frames.append(unseen)
    if not frames:
        return X.iloc[:0]
    probes = pd.concat(frames, ignore_index=True)
    for spec in signature.columns:  # keep dtypes that validate_frame takes fast
        if spec.name in probes.columns and spec.kind in ("number", "integer"):
            probes[spec.name] = pd.to_numeric(probes[spec.name], errors="coerce")
    return probes


def _sample(X: pd.DataFrame) -> pd.DataFrame:
    if len(X) <= MAX_CHECK_ROWS:
        return X
    return X.sample(MAX_CHECK_ROWS, random_state=0)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Largest absolute difference and label disagreements (outside near ties) of two probability tables."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        return {"max_abs_diff": None, "label_mismatches": None, "shape": [list(reference.shape), list(candidate.shape)]}
    diff = float(np.nanmax(np.abs(reference - candidate))) if reference.size else 0.0
    if np.isnan(candidate).any() != np.isnan(reference).any():
        diff = float("inf")
    mismatched = reference.argmax(axis=1) != candidate.argmax(axis=1)
    top2 = np.sort(reference, axis=1)[:, -2:] if reference.shape[1] > 1 else np.zeros((len(reference), 2))
    near_tie = (top2[:, 1] - top2[:, 0]) <= TOLERANCE
    return {
        "max_abs_diff": diff,
        "label_mismatches": int((mismatched & ~near_tie).sum()),
        "near_tie_mismatches": int((mismatched & near_tie).sum()),
    }


# --- The conversion ------------------------------------------------------------------------------
def try_convert(pipeline, signature, X_sample: pd.DataFrame) -> tuple[bytes | None, dict]:
    """Convert ``pipeline`` to ONNX and verify it on ``X_sample``; ``(onnx_bytes | None, report)``.

    The report is JSON: ``{"converted", "reason", "sha256", "size_bytes", "rows_checked",
    "probe_rows", "max_abs_diff", "label_mismatches", "near_tie_mismatches", "tolerance", "inputs",
    "output", "opset", "seconds", "versions"}``. Nothing here raises for a model that does not
    convert: the reason is in ``report["reason"]``.
    """
    started = time.monotonic()
    if not isinstance(signature, Signature):
        signature = Signature(signature)
    report: dict = {
        "converted": False,
        "reason": None,
        "sha256": None,
        "size_bytes": None,
        "rows_checked": 0,
        "probe_rows": 0,
        "max_abs_diff": None,
        "label_mismatches": None,
        "near_tie_mismatches": None,
        "tolerance": TOLERANCE,
        "inputs": [],
        "output": None,
        "opset": dict(TARGET_OPSET),
        "versions": _versions(),
    }
    try:
        onnx_bytes = _convert_and_verify(pipeline, signature, X_sample, report)
    except ConversionRefused as exc:
        onnx_bytes, report["reason"] = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any converter failure means "serve the skops file"
        onnx_bytes, report["reason"] = None, f"conversion failed: {type(exc).__name__}: {str(exc)[:500]}"
    report["seconds"] = round(time.monotonic() - started, 3)
    if onnx_bytes is not None:
        report["converted"] = True
        report["sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
        report["size_bytes"] = len(onnx_bytes)
    return onnx_bytes, report


def _versions() -> dict:
    import onnx
    import onnxruntime
    import skl2onnx

    return {"skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _convert_and_verify(pipeline, signature: Signature, X_sample: pd.DataFrame, report: dict) -> bytes | None:
    if not isinstance(X_sample, pd.DataFrame) or len(X_sample) == 0:
        raise ConversionRefused("no sample rows to verify the conversion on")
    if not hasattr(pipeline, "predict_proba"):
        raise ConversionRefused("the model has no predict_proba")
    from .signature import json_labels

    classes = json_labels(getattr(pipeline, "classes_", []))
    if signature.classes is not None and classes != signature.classes:
        raise ConversionRefused(f"the signature's classes {signature.classes} are not the model's {classes}")
    report["classes"] = classes
    from .signature import unused_columns

    unused = unused_columns(pipeline, signature.names)
    used = [spec for spec in signature.columns if spec.name not in unused]
    kinds = input_kinds(signature)
    for spec in used:
        if spec.name not in kinds:
            raise ConversionRefused(f"column {spec.name!r} is a datetime column: ONNX conversion does not cover dates")
        if spec.kind == "string" and spec.categories and MISSING_LABEL in spec.categories:
            raise ConversionRefused(f"column {spec.name!r} has the category 'nan', which ONNX inputs use for missing")
    if _contains_lightgbm(pipeline) and not _register_lightgbm():
        raise ConversionRefused("LightGBM models need onnxmltools to convert (not installed)")

    sample = _sample(X_sample)
    probes = _probe_frame(sample, signature, {s.name for s in used})
    check = pd.concat([sample, probes], ignore_index=True) if len(probes) else sample.reset_index(drop=True)
    batch = signature.validate_frame(check)
    frame = batch.to_frame(signature)
    for spec in used:
        if spec.kind == "string":
            labels = frame[spec.name].dropna()
            if (labels.astype(str) == MISSING_LABEL).any():
                raise ConversionRefused(
                    f"column {spec.name!r} has the category 'nan', which ONNX inputs use for missing"
                )

    model = _prepare(pipeline)
    reference = pipeline.predict_proba(frame)
    report["rows_checked"] = len(frame)
    report["probe_rows"] = len(probes)
    report["attempts"] = []
    for precision in NUMERIC_PRECISIONS:
        try:
            onnx_bytes = _attempt(model, signature, used, kinds, precision, batch, reference, report)
        except ConversionRefused as exc:
            report["attempts"].append({"numeric": precision, "reason": str(exc)})
        except Exception as exc:  # noqa: BLE001 - converter failures are many and varied
            reason = f"conversion failed: {type(exc).__name__}: {str(exc)[:300]}"
            report["attempts"].append({"numeric": precision, "reason": reason})
        else:
            report["attempts"].append({"numeric": precision, "reason": None})
            report["numeric_inputs"] = precision
            return onnx_bytes
    raise ConversionRefused("; ".join(f"{a['numeric']} inputs: {a['reason']}" for a in report["attempts"]))


def _attempt(model, signature, used, kinds, precision, batch, reference, report) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    numeric = DoubleTensorType if precision == "double" else FloatTensorType
    initial_types = [
        (spec.name, numeric([None, 1]) if kinds[spec.name] == "float" else StringTensorType([None, 1])) for spec in used
    ]
    final = _final_classifier(model)
    onx = convert_sklearn(
        model,
        initial_types=initial_types,
        options={id(final): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        custom_conversion_functions=_custom_converters(),
        custom_shape_calculators=_custom_shape_calculators(),
    )
    onnx_bytes = onx.SerializeToString()
    session = make_session(onnx_bytes, log_severity=4)
    inputs, output = session_io(session, signature)
    candidate = session.run([output], onnx_feed(batch.columns, inputs))[0]
    result = compare(reference, candidate)
    report.update(result)
    if result["max_abs_diff"] is None:
        raise ConversionRefused(
            f"the ONNX model gives probabilities of shape {result['shape'][1]}, expected {result['shape'][0]}"
        )
    if not result["max_abs_diff"] <= TOLERANCE:
        raise ConversionRefused(
            f"ONNX probabilities differ from scikit-learn's by up to {result['max_abs_diff']:.3g} "
            f"(tolerance {TOLERANCE:g})"
        )
    if result["label_mismatches"]:
        raise ConversionRefused(f"ONNX predicts a different class on {result['label_mismatches']} rows")
    report["inputs"] = [{"name": name, "type": kind} for name, kind in inputs]
    report["output"] = output
    return onnx_bytes
