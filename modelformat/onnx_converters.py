"""skl2onnx converters for what the studio's pipelines contain and skl2onnx lacks or gets wrong.

Passed to ``convert_sklearn`` per call (``converters_for(precision, model)``), never registered globally,
except onnxmltools' LightGBM converter (``register_lightgbm``). ``precision`` ("double" or
"float") is the numeric type of the attempt: every numeric output below is declared, and cast to,
that type, so that a ColumnTransformer never concatenates float32 encoder outputs with float64
numbers, and an ensemble never adds float32 and float64 probabilities (the "double/float
mismatch" of issue 10).

* ``SimpleImputer``: labels whose missing marker is NaN; numbers with ``add_indicator=True`` or
  with columns dropped as all-missing (skl2onnx ignores both); double inputs (onnxruntime's
  ``Imputer`` op has no double kernel).
* ``OneHotEncoder`` with infrequent categories (``min_frequency``; skl2onnx refuses them): each
  label column's output position taken from the fitted encoder itself (rare, missing and unseen
  labels set the infrequent column where scikit-learn does); without infrequent categories,
  skl2onnx's converter with ``"infrequent_if_exist"`` as ``"ignore"``. Output cast to the
  attempt's precision. ``TargetEncoder``: written here (skl2onnx's refuses multiclass targets).
* ``TfidfVectorizer``: skl2onnx's word counts, then the TF-IDF weighting written here (skl2onnx
  gets ``sublinear_tf`` wrong).
* ``OrdinalEncoder``: a ``LabelEncoder`` op per column, with codes taken from the fitted encoder
  itself (unknown, missing and infrequent categories included).
* ``DatetimeParts`` (the studio's transformer): year, month, day, day of week and hour computed
  from seconds since 1970 (a double input) with the civil-from-days algorithm (H. Hinnant); several
  date columns arrive as one [N, k] input or k [N, 1] inputs, and each is gathered by position.
* Tree ensembles (forests, both gradient boostings, LightGBM): boolean list attributes that newer
  ``onnx`` refuses are written as ints and, for double inputs, thresholds are kept in double
  precision (a float32 threshold between two float32 neighbours moves the split).
* ``KNeighborsClassifier``: skl2onnx's converter with ``weights="distance"`` fixed (it negates
  the distances from opset 11 on).
* ``HistGradientBoostingClassifier`` with native categorical splits (the "boosting" featurizer):
  written here (skl2onnx writes category splits as thresholds).
* ``VotingClassifier`` (soft) and ``StackingClassifier``: every member reads all the model's
  inputs (skl2onnx's stacking converter reads only the first), and every member's probabilities
  are cast to the attempt's precision before they are combined.
* Regressors: tree ensembles (forests, gradient boostings, LightGBM) keep thresholds, leaf values
  and baselines in double; ``KNeighborsRegressor`` gets the distance fix; HistGradientBoosting's
  categorical splits as above (its raw sum is the prediction). Written here: ``VotingRegressor``
  and ``StackingRegressor`` (every member reads all inputs), ``TransformedTargetRegressor``
  (log1p/expm1, standard scaling) and ``SVR`` (in double: onnxruntime's ``SVMRegressor`` has no double kernel).
"""

from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from .onnx_feed import MISSING_LABEL, ConversionRefused
from .onnx_model import datetime_parts_classes, is_regressor, target_transform

UNSEEN_PROBE = "__studio_unseen_category__"
SECONDS_PER_DAY = 86_400.0


def _numeric_type(precision: str):
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return DoubleTensorType if precision == "double" else FloatTensorType


def _proto(precision: str) -> int:
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.proto import onnx_proto

    return onnx_proto.TensorProto.DOUBLE if precision == "double" else onnx_proto.TensorProto.FLOAT


def _node(scope, container, op_type, inputs, output_hint: str, **attrs) -> str:
    out = scope.get_unique_variable_name(output_hint)
    container.add_node(op_type, inputs, [out], name=scope.get_unique_operator_name(op_type), **attrs)
    return out


def _concat(scope, container, variables) -> str:
    """The inputs side by side in their own type (skl2onnx's ``concatenate_variables`` goes through
    FeatureVectorizer, which makes floats of doubles and refuses strings)."""
    names = [v.full_name for v in variables]
    return names[0] if len(names) == 1 else _node(scope, container, "Concat", names, "merged", axis=1)


def _const(scope, container, hint: str, proto: int, values, shape=None) -> str:
    name = scope.get_unique_variable_name(hint)
    values = list(np.asarray(values).ravel())
    container.add_initializer(name, proto, shape if shape is not None else [len(values)], values)
    return name


# --- Outputs in the attempt's precision ----------------------------------------------------------
def _cast_output(converter, precision: str):
    """Run ``converter`` into a temporary variable, then Cast it to the declared output (same name)."""

    def convert(scope, operator, container):
        target = operator.outputs[0].full_name
        raw = scope.get_unique_variable_name(f"{operator.outputs[0].onnx_name}_raw")
        add_node = container.add_node

        def redirected(op_type, inputs, outputs, *args, **kwargs):
            if isinstance(outputs, str):
                outputs = raw if outputs == target else outputs
            else:
                outputs = [raw if o == target else o for o in outputs]
            return add_node(op_type, inputs, outputs, *args, **kwargs)

        container.add_node = redirected
        try:
            converter(scope, operator, container)
        finally:
            del container.add_node  # back to the class's method
        container.add_node("Cast", [raw], [target], to=_proto(precision), name=scope.get_unique_operator_name("Cast"))

    return convert


def _shape_in(calculator, precision: str):
    """``calculator``, then the first output re-declared in the attempt's precision."""
    numeric = _numeric_type(precision)

    def calculate(operator):
        if calculator is not None:
            calculator(operator)
        shape = list(getattr(operator.outputs[0].type, "shape", None) or [None, None])
        operator.outputs[0].type = numeric(shape)

    return calculate


# --- SimpleImputer -------------------------------------------------------------------------------
def _indicator_features(op) -> list[int]:
    indicator = getattr(op, "indicator_", None)
    return [int(i) for i in indicator.features_] if (op.add_indicator and indicator is not None) else []


def _kept_columns(op) -> list[int] | None:
    """Columns scikit-learn keeps (None: all): it drops those whose statistic is NaN."""
    if getattr(op, "keep_empty_features", False):
        return None
    stats = np.asarray(op.statistics_, dtype=np.float64)
    if not np.isnan(stats).any():
        return None
    return [int(i) for i in np.flatnonzero(~np.isnan(stats))]


def _imputer_shape_calculator():
    """skl2onnx's imputer shape, plus the missing-indicator columns (``add_indicator=True``) and
    minus the columns scikit-learn drops (all-missing in training)."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
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


def _imputer_converter():
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto

    def convert_numbers(scope, operator, container):
        """Where(IsNaN(x), statistics, x) in the input's own precision (onnxruntime's Imputer op has
        no double kernel), with missing indicators and without the columns scikit-learn drops."""
        op = operator.raw_operator
        if not (isinstance(op.missing_values, float) and np.isnan(op.missing_values)):
            raise ConversionRefused(f"a SimpleImputer with missing_values={op.missing_values!r} is not converted")
        double = isinstance(operator.inputs[0].type, DoubleTensorType)
        proto = onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT
        stats = np.asarray(op.statistics_, dtype=np.float64)
        features = _indicator_features(op)
        kept = _kept_columns(op)
        # declared types may lag the actual ones (a float scaler after double date parts): cast
        source = _node(scope, container, "Cast", [_concat(scope, container, operator.inputs)], "impute_in", to=proto)
        isnan = _node(scope, container, "IsNaN", [source], "isnan")
        fill = _const(scope, container, "fill", proto, np.nan_to_num(stats, nan=0.0), [1, len(stats)])
        imputed = _node(scope, container, "Where", [isnan, fill, source], "imputed")
        parts = [imputed]
        if kept is not None:
            index = _const(scope, container, "kept", onnx_proto.TensorProto.INT64, kept)
            parts = [_node(scope, container, "Gather", [imputed, index], "imputed_kept", axis=1)]
        if features:
            index = _const(scope, container, "indicator_index", onnx_proto.TensorProto.INT64, features)
            picked = _node(scope, container, "Gather", [isnan, index], "indicator_bool", axis=1)
            parts.append(_node(scope, container, "Cast", [picked], "indicator", to=proto))
        container.add_node(
            "Concat", parts, [operator.outputs[0].full_name], axis=1, name=scope.get_unique_operator_name("Concat")
        )

    def convert(scope, operator, container):
        op = operator.raw_operator
        if not isinstance(operator.inputs[0].type, StringTensorType):
            return convert_numbers(scope, operator, container)
        if op.add_indicator:
            raise ConversionRefused("missing-value indicators over label columns are not converted")
        if not isinstance(op.missing_values, str):
            if op.missing_values is not None and not (
                isinstance(op.missing_values, float) and np.isnan(op.missing_values)
            ):
                raise ConversionRefused(f"a SimpleImputer with missing_values={op.missing_values!r} is not converted")
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


# --- Encoders ------------------------------------------------------------------------------------
def onehot_positions(op) -> list[dict]:
    """Per column of a fitted OneHotEncoder: {"width", "codes": {label: position}, "missing", "unknown"}
    (position -1: a row of zeros), read from the encoder's own ``transform`` — so infrequent labels,
    a missing value (itself infrequent when rare) and unseen labels land where scikit-learn puts them.
    ``[]`` when the categories are not labels or unknown labels raise (the caller converts otherwise)."""
    if op.handle_unknown == "error" or any(
        not isinstance(v, str) and not (isinstance(v, float) and np.isnan(v)) for c in op.categories_ for v in c
    ):
        return []
    values = [[v for v in cats if isinstance(v, str)] for cats in op.categories_]
    rows = max(len(v) for v in values) + 2  # + a missing and an unseen probe
    probe = np.empty((rows, len(values)), dtype=object)
    for j, labels in enumerate(values):
        column = labels + [np.nan, UNSEEN_PROBE]
        probe[:, j] = column + [column[0]] * (rows - len(column))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unknown categories" warnings for the unseen probe
        coded = op.transform(probe)
    coded = np.asarray(coded.toarray() if hasattr(coded, "toarray") else coded, dtype=np.float64)
    columns, start = [], 0
    for j, labels in enumerate(values):
        width = int(op._n_features_outs[j])
        block = coded[:, start : start + width]
        start += width
        if not np.isin(block, (0.0, 1.0)).all() or (block.sum(axis=1) > 1).any():
            return []
        position = [int(row.argmax()) if row.any() else -1 for row in block]
        n = len(labels)
        columns.append(
            {
                "width": width,
                "codes": {label: position[i] for i, label in enumerate(labels)},
                "missing": position[n],
                "unknown": position[n + 1],
            }
        )
    return columns if start == coded.shape[1] else []


def _has_infrequent(op) -> bool:
    return any(c is not None for c in (getattr(op, "infrequent_categories_", None) or []))


def _onehot_converter():
    """OneHotEncoder. With infrequent categories (``min_frequency``): each label is mapped to its
    output position as scikit-learn's own ``transform`` puts it (``onehot_positions``) — a missing
    value or a label rarer than ``min_frequency`` sets the infrequent column, an unseen label too.
    skl2onnx refuses such encoders, and converting them as "ignore" gave zeros where scikit-learn
    sets the infrequent column (credit_data: a voting ensemble differed by 0.034). Otherwise
    skl2onnx's converter, with "infrequent_if_exist"/"warn" converted as "ignore" (the same then)."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder
    from skl2onnx.proto import onnx_proto

    def convert_by_positions(scope, operator, container, columns):
        source = _concat(scope, container, operator.inputs)
        parts = []
        for j, column in enumerate(columns):
            if column["width"] == 0:
                continue
            index = _const(scope, container, "onehot_column", onnx_proto.TensorProto.INT64, [j])
            values = _node(scope, container, "Gather", [source, index], "onehot_values", axis=1)
            position = _node(
                scope,
                container,
                "LabelEncoder",
                [values],
                "onehot_position",
                op_domain="ai.onnx.ml",
                op_version=2,
                keys_strings=[*column["codes"], MISSING_LABEL],
                values_floats=[float(p) for p in [*column["codes"].values(), column["missing"]]],
                default_float=float(column["unknown"]),
            )
            slots = _const(scope, container, "onehot_slots", onnx_proto.TensorProto.FLOAT, range(column["width"]))
            hot = _node(scope, container, "Equal", [position, slots], "onehot_hot")
            parts.append(_node(scope, container, "Cast", [hot], "onehot_block", to=onnx_proto.TensorProto.FLOAT))
        merged = parts[0] if len(parts) == 1 else _node(scope, container, "Concat", parts, "onehot_merged", axis=1)
        container.add_node(
            "Identity", [merged], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Identity")
        )

    def convert(scope, operator, container):
        op = operator.raw_operator
        if _has_infrequent(op) and all(isinstance(i.type, StringTensorType) for i in operator.inputs):
            columns = onehot_positions(op)
            if columns and any(c["width"] for c in columns):
                return convert_by_positions(scope, operator, container, columns)
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


def _onehot_shape(plain_calculator, precision: str):
    """The encoder's real width (``transform``'s) when it has infrequent categories; else skl2onnx's."""
    numeric = _numeric_type(precision)
    plain = _shape_in(plain_calculator, precision)

    def calculate(operator):
        op = operator.raw_operator
        if _has_infrequent(op):
            operator.outputs[0].type = numeric([None, int(sum(op._n_features_outs))])
        else:
            plain(operator)

    return calculate


def ordinal_codes(op) -> list[dict]:
    """Per column of a fitted OrdinalEncoder: {"codes": {label: code}, "missing": code, "unknown": code},
    read from the encoder's own ``transform`` (so infrequent, unknown and missing values are coded
    exactly as scikit-learn codes them)."""
    columns = []
    width = len(op.categories_)
    values = [[v for v in cats if isinstance(v, str)] for cats in op.categories_]
    rows = max(len(v) for v in values) + 2  # + a missing and an unseen probe
    probe = np.empty((rows, width), dtype=object)
    for j, labels in enumerate(values):
        column = labels + [np.nan, UNSEEN_PROBE]
        column += [column[0]] * (rows - len(column))
        probe[:, j] = column
    if op.handle_unknown == "error" or any(
        not isinstance(v, str) and not (isinstance(v, float) and np.isnan(v)) for c in op.categories_ for v in c
    ):
        return []  # unknown labels raise, or categories are not labels: the caller refuses
    coded = op.transform(probe)
    for j, labels in enumerate(values):
        n = len(labels)
        columns.append(
            {
                "codes": {label: float(coded[i, j]) for i, label in enumerate(labels)},
                "missing": float(coded[n, j]),
                "unknown": float(coded[n + 1, j]),
            }
        )
    return columns


def _ordinal_converter(precision: str):
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.proto import onnx_proto

    def convert(scope, operator, container):
        op = operator.raw_operator
        if not all(isinstance(i.type, StringTensorType) for i in operator.inputs):
            raise ConversionRefused("an OrdinalEncoder over numbers is not converted")
        columns = ordinal_codes(op)
        if not columns:
            raise ConversionRefused("an OrdinalEncoder with non-label categories is not converted")
        # One [N, k] input or k [N, 1] inputs (skl2onnx merges a transformer's columns either way):
        # each date column is gathered from the whole, never read as if the input held only one.
        source = _concat(scope, container, operator.inputs)
        parts = []
        for j, column in enumerate(columns):
            if source is None:
                values = operator.inputs[0].full_name
            else:
                index = _const(scope, container, "ordinal_column", onnx_proto.TensorProto.INT64, [j])
                values = _node(scope, container, "Gather", [source, index], "ordinal_values", axis=1)
            keys = [*column["codes"], MISSING_LABEL]
            codes = [*column["codes"].values(), column["missing"]]
            parts.append(
                _node(
                    scope,
                    container,
                    "LabelEncoder",
                    [values],
                    "ordinal_codes",
                    op_domain="ai.onnx.ml",
                    op_version=2,
                    keys_strings=keys,
                    values_floats=codes,
                    default_float=column["unknown"],
                )
            )
        merged = parts[0] if len(parts) == 1 else _node(scope, container, "Concat", parts, "ordinal_merged", axis=1)
        container.add_node(
            "Cast",
            [merged],
            [operator.outputs[0].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )

    return convert


def _ordinal_shape(precision: str):
    numeric = _numeric_type(precision)

    def calculate(operator):
        operator.outputs[0].type = numeric([None, len(operator.raw_operator.categories_)])

    return calculate


def _target_encoder_converter(precision: str):
    """TargetEncoder as a LabelEncoder op per output column (skl2onnx's converter refuses
    multiclass targets): a category seen in training gives its encoding, an unseen one the target
    mean, a missing one the encoding of the NaN category if it was seen. Multiclass output is
    feature-major, one column per class, as scikit-learn lays it out."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.proto import onnx_proto

    def convert(scope, operator, container):
        op = operator.raw_operator
        if not all(isinstance(i.type, StringTensorType) for i in operator.inputs):
            raise ConversionRefused("a target encoder over numbers is not converted")
        source = _concat(scope, container, operator.inputs)
        means = np.atleast_1d(np.asarray(op.target_mean_, dtype=np.float64))
        per_feature = len(means) if op.target_type_ == "multiclass" else 1
        parts = []
        for j, categories in enumerate(op.categories_):
            keys = [MISSING_LABEL if (isinstance(v, float) and np.isnan(v)) else str(v) for v in categories]
            if len(set(keys)) != len(keys):
                raise ConversionRefused("a target encoder whose categories repeat as text is not converted")
            index = _const(scope, container, "target_column", onnx_proto.TensorProto.INT64, [j])
            values = _node(scope, container, "Gather", [source, index], "target_values", axis=1)
            for k in range(per_feature):
                encoding = np.asarray(op.encodings_[j * per_feature + k], dtype=np.float64)
                parts.append(
                    _node(
                        scope,
                        container,
                        "LabelEncoder",
                        [values],
                        "target_encoded",
                        op_domain="ai.onnx.ml",
                        op_version=2,
                        keys_strings=keys,
                        values_floats=[float(v) for v in encoding],
                        default_float=float(means[k]),
                    )
                )
        merged = parts[0] if len(parts) == 1 else _node(scope, container, "Concat", parts, "target_merged", axis=1)
        container.add_node(
            "Cast",
            [merged],
            [operator.outputs[0].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )

    return convert


def _target_encoder_shape(precision: str):
    numeric = _numeric_type(precision)

    def calculate(operator):
        op = operator.raw_operator
        per_feature = len(np.atleast_1d(op.target_mean_)) if op.target_type_ == "multiclass" else 1
        operator.outputs[0].type = numeric([None, len(op.categories_) * per_feature])

    return calculate


# --- TfidfVectorizer -----------------------------------------------------------------------------
def _tfidf_converter(precision: str):
    """skl2onnx's word counts (its Tokenizer and TfIdfVectorizer ops), then the TF-IDF weighting
    written here: skl2onnx writes sublinear tf as log(1 + tf), scikit-learn as 1 + log(tf) for
    non-zero counts (a difference of up to 0.02 in probabilities on the studio's text features)."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.proto import onnx_proto

    single = onnx_proto.TensorProto.FLOAT

    def convert(scope, operator, container):
        op = operator.raw_operator
        # a CountVectorizer of the same vocabulary: declaring the counts with ``op`` itself would
        # send them back to this converter (custom converters are chosen by the model's type)
        words = CountVectorizer(
            lowercase=op.lowercase,
            token_pattern=op.token_pattern,
            ngram_range=op.ngram_range,
            analyzer=op.analyzer,
            binary=op.binary,
            stop_words=op.stop_words,
        )
        words.vocabulary_ = op.vocabulary_
        words.fixed_vocabulary_ = True
        defaults = dict(separators="DEFAULT", tokenexp=None, nan=False, keep_empty_string=False, locale=None)
        container.add_options(id(words), container.get_options(op, defaults))
        counter = scope.declare_local_operator(sklearn_operator_name_map[CountVectorizer], words)
        counter.inputs = operator.inputs
        width = max(op.vocabulary_.values()) + 1
        counts = scope.declare_local_variable("word_counts", FloatTensorType([None, width]))
        counter.outputs.append(counts)

        def c(values, shape=None) -> str:
            return _const(scope, container, "k", single, values, shape)

        def n(op_type, *inputs, **attrs) -> str:
            return _node(scope, container, op_type, list(inputs), op_type.lower(), **attrs)

        data = counts.full_name
        if op.sublinear_tf:
            zero = c([0.0], [])
            logged = n("Add", n("Log", n("Max", data, c([1e-30], []))), c([1.0], []))
            data = n("Where", n("Greater", data, zero), logged, zero)
        if op.use_idf:
            data = n("Mul", data, c(np.asarray(op.idf_, dtype=np.float32), [width]))
        if op.norm is not None:
            axes = _const(scope, container, "axes", onnx_proto.TensorProto.INT64, [1])
            if op.norm == "l2":
                norm = n("Sqrt", n("ReduceSum", n("Mul", data, data), axes, keepdims=1))
            else:
                norm = n("ReduceSum", n("Abs", data), axes, keepdims=1)
            zero = c([0.0], [])
            safe = n("Where", n("Equal", norm, zero), c([1.0], []), norm)  # an empty text stays zeros
            data = n("Div", data, safe)
        container.add_node(
            "Cast",
            [data],
            [operator.outputs[0].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )

    return convert


def _tfidf_shape(precision: str):
    numeric = _numeric_type(precision)

    def calculate(operator):
        operator.outputs[0].type = numeric([None, max(operator.raw_operator.vocabulary_.values()) + 1])

    return calculate


# --- DatetimeParts -------------------------------------------------------------------------------
def _datetime_parts_converter(precision: str):
    """Parts of seconds since 1970 (NaN for a missing date), as ``DatetimeParts`` computes them."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.proto import onnx_proto

    double = onnx_proto.TensorProto.DOUBLE

    def convert(scope, operator, container):
        op = operator.raw_operator
        # One [N, k] input or k [N, 1] inputs (skl2onnx merges a transformer's columns either way):
        # each date column is gathered from the whole, never read as if the input held only one.
        source = _concat(scope, container, operator.inputs)

        def c(value) -> str:
            return _const(scope, container, "k", double, [float(value)], [])

        def n(op_type, *inputs, **attrs) -> str:
            return _node(scope, container, op_type, list(inputs), op_type.lower(), **attrs)

        def floor_div(a, b) -> str:
            return n("Floor", n("Div", a, c(b)))

        wanted = {name: index for index, name in enumerate(op.features_)}
        outputs: dict[int, str] = {}
        for j, column in enumerate(op.columns_):
            if len(op.columns_) == 1:
                seconds = source
            else:
                index = _const(scope, container, "date_column", onnx_proto.TensorProto.INT64, [j])
                seconds = n("Gather", source, index, axis=1)
            days = floor_div(seconds, SECONDS_PER_DAY)
            parts = {}
            parts["hour"] = lambda seconds=seconds, days=days: floor_div(
                n("Sub", seconds, n("Mul", days, c(SECONDS_PER_DAY))), 3600
            )
            parts["day_of_week"] = lambda days=days: n(
                "Sub", n("Add", days, c(3)), n("Mul", floor_div(n("Add", days, c(3)), 7), c(7))
            )  # 1970-01-01 was a Thursday (3; Monday is 0)
            civil = {}

            def civil_date(days=days, civil=civil):
                if civil:
                    return civil
                z = n("Add", days, c(719_468))
                era = floor_div(z, 146_097)
                doe = n("Sub", z, n("Mul", era, c(146_097)))
                yoe = floor_div(
                    n(
                        "Sub",
                        n("Add", n("Sub", doe, floor_div(doe, 1460)), floor_div(doe, 36_524)),
                        floor_div(doe, 146_096),
                    ),
                    365,
                )
                doy = n(
                    "Sub",
                    doe,
                    n("Sub", n("Add", n("Mul", yoe, c(365)), floor_div(yoe, 4)), floor_div(yoe, 100)),
                )
                mp = floor_div(n("Add", n("Mul", doy, c(5)), c(2)), 153)
                day = n("Add", n("Sub", doy, floor_div(n("Add", n("Mul", mp, c(153)), c(2)), 5)), c(1))
                late = n("Cast", n("GreaterOrEqual", mp, c(10)), to=double)
                month = n("Sub", n("Add", mp, c(3)), n("Mul", late, c(12)))
                early = n("Cast", n("LessOrEqual", month, c(2)), to=double)
                year = n("Add", n("Add", yoe, n("Mul", era, c(400))), early)
                civil.update(year=year, month=month, day=day)
                return civil

            parts["year"] = lambda: civil_date()["year"]
            parts["month"] = lambda: civil_date()["month"]
            parts["day"] = lambda: civil_date()["day"]
            for part in op.parts:
                name = f"{column}_{part}"
                if name in wanted:
                    outputs[wanted[name]] = parts[part]()
        ordered = [outputs[i] for i in range(len(op.features_))]
        merged = ordered[0] if len(ordered) == 1 else n("Concat", *ordered, axis=1)
        container.add_node(
            "Cast",
            [merged],
            [operator.outputs[0].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )

    return convert


def _datetime_parts_shape(precision: str):
    numeric = _numeric_type(precision)

    def calculate(operator):
        operator.outputs[0].type = numeric([None, len(operator.raw_operator.features_)])

    return calculate


# --- Tree ensembles ------------------------------------------------------------------------------
# Tree ops and the position of their numeric output
TREE_OPS = {"TreeEnsembleClassifier": 1, "TreeEnsembleRegressor": 0}


def _tree_converter(converter, *, double_thresholds: bool):
    """Wrap a tree-ensemble converter: boolean list attributes are written as ints (newer onnx
    refuses bools) and, for double inputs, thresholds are kept in double precision
    (``nodes_values_as_tensor``, ai.onnx.ml opset 3) with the float scores cast back to the double
    output skl2onnx declares. Without this, a value within float32 rounding of a split threshold
    can take the other branch: a few rows in thousands then differ by a whole leaf value."""
    # deferred: onnx is heavy to import and only ONNX conversion or serving needs it
    from onnx import numpy_helper
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.proto import onnx_proto

    function = getattr(converter, "_fct", converter)
    takes_version = "op_version" in inspect.signature(function).parameters

    def convert(scope, operator, container):
        double = double_thresholds and isinstance(operator.inputs[0].type, DoubleTensorType)
        add_node = container.add_node

        def patched(op_type, inputs, outputs, op_domain="", op_version=None, **attrs):
            for key, value in attrs.items():
                if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
                    attrs[key] = [int(v) for v in value]
            if double and op_type in TREE_OPS and op_domain == "ai.onnx.ml":
                for key in ("nodes_values", "target_weights", "base_values"):
                    if key in attrs:  # leaf values and baselines too: a regressor sums them
                        values = np.asarray(attrs.pop(key), dtype=np.float64)
                        attrs[f"{key}_as_tensor"] = numpy_helper.from_array(values)
                outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
                position = TREE_OPS[op_type]  # the classifier's scores, the regressor's predictions
                declared, scores = outputs[position], scope.get_unique_variable_name("tree_scores")
                outputs[position] = scores
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
            if double and takes_version:
                return function(scope, operator, container, op_version=3)
            return converter(scope, operator, container)
        finally:
            del container.add_node  # back to the class's method

    return convert


# --- k-nearest neighbours -----------------------------------------------------------------------
def _knn_converter(converter):
    """skl2onnx's KNeighborsClassifier converter with its distance weights fixed: from opset 11 its
    neighbour search returns the distances negated, so ``weights="distance"`` weighs every
    neighbour alike (differences of 0.17 in probability). The search is wrapped, for this
    conversion only, to return them positive."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    import skl2onnx.operator_converters.nearest_neighbours as neighbours
    from skl2onnx.algebra.onnx_ops import OnnxMul

    search = neighbours.onnx_nearest_neighbors_indices_k

    def positive_distances(*args, **kwargs):
        result = search(*args, **kwargs)
        version = kwargs.get("op_version")
        if kwargs.get("keep_distances") and version is not None and version >= 11:
            indices, negated = result
            dtype = kwargs.get("dtype") or np.float32
            return indices, OnnxMul(negated, np.array([-1], dtype=dtype), op_version=version)
        return result

    def convert(scope, operator, container):
        neighbours.onnx_nearest_neighbors_indices_k = positive_distances
        try:
            return converter(scope, operator, container)
        finally:
            neighbours.onnx_nearest_neighbors_indices_k = search

    return convert


def exact_neighbour_weights(onx) -> None:
    """scikit-learn gives a neighbour at distance 0 all the weight (the row is scored as the
    training row it equals); skl2onnx floors distances at 1e-6 before 1/d, which leaves the other
    neighbours ~1e-5 of the vote — over the tolerance when the check rows are training rows (as
    for models validated by cross-validation). The floor is lowered to 1e-300 (1e-30 in float32):
    an exact match then takes the whole vote, and the weights still sum without overflow."""
    # deferred: onnx is heavy to import and only ONNX conversion or serving needs it
    from onnx import numpy_helper

    producers = {out: node for node in onx.graph.node for out in node.output}
    initializers = {tensor.name: tensor for tensor in onx.graph.initializer}
    for node in onx.graph.node:
        if node.op_type != "Reciprocal" or node.input[0] not in producers:
            continue
        floor = producers[node.input[0]]
        if floor.op_type != "Max":
            continue
        for name in floor.input:
            tensor = initializers.get(name)
            if tensor is None:
                continue
            value = numpy_helper.to_array(tensor)
            if value.size == 1 and np.isclose(float(value.ravel()[0]), 1e-6):
                tiny = 1e-300 if value.dtype == np.float64 else 1e-30
                tensor.CopyFrom(numpy_helper.from_array(np.full(value.shape, tiny, dtype=value.dtype), name))


# --- HistGradientBoosting with native categorical splits --------------------------------------
def _in_bitset(bitset, value: int) -> bool:
    return bool((int(bitset[value // 32]) >> (value % 32)) & 1)


def _hgb_categorical_converter(plain_converter, precision: str):
    """HistGradientBoosting whose trees split on categories (the "boosting" featurizer's ordinal
    codes). skl2onnx writes such a split as a threshold, which is wrong. Here each categorical
    split reads a derived column computed in the graph from the raw value: 0 for the categories that
    go left, 1 for the other categories seen in training, NaN for missing or never-seen values —
    which go the split's missing-value way, as scikit-learn's predictor does. The split itself
    is then "derived <= 0.5". Trees sum in a TreeEnsembleRegressor (double thresholds), then the
    baseline and the sigmoid (two classes) or softmax, as scikit-learn's loss computes them."""
    # deferred: onnx is heavy to import and only ONNX conversion or serving needs it
    from onnx import numpy_helper
    from skl2onnx.proto import onnx_proto

    double = onnx_proto.TensorProto.DOUBLE
    single = onnx_proto.TensorProto.FLOAT

    def convert(scope, operator, container):
        op = operator.raw_operator
        categorical = getattr(op, "is_categorical_", None)
        if categorical is None or not np.asarray(categorical).any():
            return plain_converter(scope, operator, container)
        known, f_idx_map = op._bin_mapper.make_known_categories_bitsets()  # noqa: SLF001
        # HGB re-encodes its categorical columns (its own OrdinalEncoder: the i-th value seen is code
        # i, unseen and missing values NaN) and puts them first: tree features are in that order.
        encoder = op._preprocessor.named_transformers_["encoder"]  # noqa: SLF001
        originals = [*np.flatnonzero(op.is_categorical_), *np.flatnonzero(~np.asarray(op.is_categorical_))]
        source = _node(scope, container, "Cast", [_concat(scope, container, operator.inputs)], "hgb_x", to=double)
        width = op.n_features_in_
        # One derived column per distinct (feature, left categories): its number in order of discovery.
        derived: dict[tuple[int, tuple], int] = {}
        nodes = {k: [] for k in ("treeids", "nodeids", "featureids", "modes", "values", "true", "false", "missing")}
        targets = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
        per_iteration = len(op._predictors[0])  # noqa: SLF001
        for iteration, predictors in enumerate(op._predictors):  # noqa: SLF001
            for k, predictor in enumerate(predictors):
                tree = iteration * per_iteration + k
                for index, node in enumerate(predictor.nodes):
                    nodes["treeids"].append(tree)
                    nodes["nodeids"].append(index)
                    if node["is_leaf"]:
                        nodes["featureids"].append(0)
                        nodes["modes"].append("LEAF")
                        nodes["values"].append(0.0)
                        nodes["true"].append(0)
                        nodes["false"].append(0)
                        nodes["missing"].append(0)
                        targets["treeids"].append(tree)
                        targets["nodeids"].append(index)
                        targets["ids"].append(k)
                        targets["weights"].append(float(node["value"]))
                        continue
                    feature = int(node["feature_idx"])
                    if node["is_categorical"]:
                        # bitset_idx indexes this tree's own bitsets: key the derived column by content
                        left = predictor.raw_left_cat_bitsets[int(node["bitset_idx"])]
                        key = (feature, tuple(int(word) for word in left))
                        derived.setdefault(key, len(derived))
                        nodes["featureids"].append(-1 - derived[key])  # numbered below, grouped by feature
                        nodes["values"].append(0.5)
                    else:
                        nodes["featureids"].append(int(originals[feature]))
                        nodes["values"].append(float(node["num_threshold"]))
                    nodes["modes"].append("BRANCH_LEQ")
                    nodes["true"].append(int(node["left"]))
                    nodes["false"].append(int(node["right"]))
                    nodes["missing"].append(int(bool(node["missing_go_to_left"])))
        # The derived columns of a feature come from one lookup: its value → a row of a table whose
        # columns are that feature's derived columns (the last row, NaN, for missing or unseen values).
        # A column per split's categories each with its own lookup made thousands of nodes for a
        # text column split on in many trees: minutes of conversion and milliseconds a request.
        by_feature: dict[int, list[tuple[int, tuple]]] = {}
        for key in derived:
            by_feature.setdefault(key[0], []).append(key)
        position: dict[int, int] = {}
        parts = [source]
        for feature, keys in by_feature.items():
            values = [float(v) for v in encoder.categories_[feature] if not np.isnan(v)]
            seen = known[f_idx_map[feature]]
            for key in keys:
                position[derived[key]] = width + len(position)
            # A derived column's value for each known code: 0 left, 1 right, NaN never seen in training.
            sides = np.asarray(
                [
                    [
                        (0.0 if _in_bitset(left, c) else 1.0) if _in_bitset(seen, c) else np.nan
                        for c in range(len(values))
                    ]
                    for _, left in keys
                ],
                dtype=np.float64,
            ).T
            table = np.vstack([sides, np.full((1, len(keys)), np.nan)])
            index = _const(scope, container, "hgb_feature", onnx_proto.TensorProto.INT64, [originals[feature]])
            codes = _node(scope, container, "Gather", [source, index], "hgb_codes", axis=1)
            codes = _node(scope, container, "Cast", [codes], "hgb_codes_f", to=single)
            row = _node(
                scope,
                container,
                "LabelEncoder",
                [codes],
                "hgb_row_f",
                op_domain="ai.onnx.ml",
                op_version=2,
                keys_floats=values,
                values_floats=[float(i) for i in range(len(values))],
                default_float=float(len(values)),
            )
            row = _node(scope, container, "Cast", [row], "hgb_row", to=onnx_proto.TensorProto.INT64)
            flat = _const(scope, container, "hgb_flat", onnx_proto.TensorProto.INT64, [-1])
            row = _node(scope, container, "Reshape", [row, flat], "hgb_row_flat")
            lookup = _const(scope, container, "hgb_sides", double, table, list(table.shape))
            parts.append(_node(scope, container, "Gather", [lookup, row], "hgb_side", axis=0))
        nodes["featureids"] = [position[-1 - f] if f < 0 else f for f in nodes["featureids"]]
        features = parts[0] if len(parts) == 1 else _node(scope, container, "Concat", parts, "hgb_features", axis=1)
        baseline = np.asarray(op._baseline_prediction, dtype=np.float64).ravel()  # noqa: SLF001
        raw = _node(
            scope,
            container,
            "TreeEnsembleRegressor",
            [features],
            "hgb_raw",
            op_domain="ai.onnx.ml",
            op_version=3,
            n_targets=per_iteration,
            aggregate_function="SUM",
            post_transform="NONE",
            base_values_as_tensor=numpy_helper.from_array(baseline),
            nodes_treeids=nodes["treeids"],
            nodes_nodeids=nodes["nodeids"],
            nodes_featureids=nodes["featureids"],
            nodes_modes=nodes["modes"],
            nodes_values_as_tensor=numpy_helper.from_array(np.asarray(nodes["values"], dtype=np.float64)),
            nodes_truenodeids=nodes["true"],
            nodes_falsenodeids=nodes["false"],
            nodes_missing_value_tracks_true=nodes["missing"],
            target_treeids=targets["treeids"],
            target_nodeids=targets["nodeids"],
            target_ids=targets["ids"],
            target_weights_as_tensor=numpy_helper.from_array(np.asarray(targets["weights"], dtype=np.float64)),
        )
        raw = _node(scope, container, "Cast", [raw], "hgb_raw_d", to=double)
        if is_regressor(op):  # squared error: the raw sum is the prediction
            container.add_node(
                "Cast",
                [raw],
                [operator.outputs[0].full_name],
                to=_proto(precision),
                name=scope.get_unique_operator_name("Cast"),
            )
            return
        if per_iteration == 1:
            second = _node(scope, container, "Sigmoid", [raw], "hgb_p1")
            first = _node(
                scope, container, "Sub", [_const(scope, container, "one", double, [1.0], []), second], "hgb_p0"
            )
            proba = _node(scope, container, "Concat", [first, second], "hgb_proba", axis=1)
        else:
            proba = _node(scope, container, "Softmax", [raw], "hgb_proba", axis=1)
        container.add_node(
            "Cast",
            [proba],
            [operator.outputs[1].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )
        _write_label(scope, container, operator, proba)

    return convert


def _hgb_shape(plain_calculator, precision: str):
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.common.data_types import Int64TensorType

    numeric = _numeric_type(precision)

    def calculate(operator):
        categorical = getattr(operator.raw_operator, "is_categorical_", None)
        if categorical is None or not np.asarray(categorical).any():
            return plain_calculator(operator)
        if is_regressor(operator.raw_operator):
            operator.outputs[0].type = numeric([None, 1])
            return
        operator.outputs[0].type = Int64TensorType([None])
        operator.outputs[1].type = numeric([None, len(operator.raw_operator.classes_)])

    return calculate


# --- Ensembles over raw columns ------------------------------------------------------------------
def _member_probabilities(scope, container, operator, member, precision: str) -> str:
    """Declare ``member`` (a Pipeline) over all the operator's inputs; its probabilities' name."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common.data_types import Int64TensorType

    sub = scope.declare_local_operator(sklearn_operator_name_map[type(member)], member)
    sub.inputs = list(operator.inputs)
    label = scope.declare_local_variable("member_label", Int64TensorType())
    proba = scope.declare_local_variable("member_proba", _numeric_type(precision)())
    sub.outputs.extend([label, proba])
    return _node(scope, container, "Cast", [proba.full_name], "member_proba_cast", to=_proto(precision))


def _write_label(scope, container, operator, probabilities: str) -> None:
    """The label output: the index of the most probable class (serving reads only probabilities)."""
    container.add_node(
        "ArgMax",
        [probabilities],
        [operator.outputs[0].full_name],
        axis=1,
        keepdims=0,
        name=scope.get_unique_operator_name("ArgMax"),
    )


def _voting_converter(precision: str):

    def convert(scope, operator, container):
        op = operator.raw_operator
        if op.voting != "soft":
            raise ConversionRefused("hard-voting ensembles are not converted")
        members = [m for m in op.estimators_ if m is not None and m != "drop"]
        weights = np.ones(len(members)) if op.weights is None else np.asarray(op.weights, dtype=np.float64)
        weights = weights / weights.sum()
        terms = []
        for member, weight in zip(members, weights, strict=True):
            proba = _member_probabilities(scope, container, operator, member, precision)
            scale = _const(scope, container, "weight", _proto(precision), [weight], [])
            terms.append(_node(scope, container, "Mul", [proba, scale], "weighted"))
        total = terms[0] if len(terms) == 1 else _node(scope, container, "Sum", terms, "voting_sum")
        container.add_node(
            "Identity", [total], [operator.outputs[1].full_name], name=scope.get_unique_operator_name("Identity")
        )
        _write_label(scope, container, operator, total)

    return convert


def _stacking_converter(precision: str):
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common.data_types import Int64TensorType
    from skl2onnx.proto import onnx_proto

    def convert(scope, operator, container):
        op = operator.raw_operator
        if any(method != "predict_proba" for method in op.stack_method_) or op.passthrough:
            raise ConversionRefused("stacking over decision functions or with passthrough is not converted")
        binary = len(op.classes_) == 2
        features = []
        for member in op.estimators_:
            if member == "drop":
                continue
            proba = _member_probabilities(scope, container, operator, member, precision)
            if binary:  # StackingClassifier keeps only the second class's probability
                index = _const(scope, container, "second", onnx_proto.TensorProto.INT64, [1])
                proba = _node(scope, container, "Gather", [proba, index], "second_proba", axis=1)
            features.append(proba)
        merged = scope.declare_local_variable(
            "stack_features", _numeric_type(precision)([None, op.final_estimator_.n_features_in_])
        )
        container.add_node(
            "Concat", features, [merged.full_name], axis=1, name=scope.get_unique_operator_name("Concat")
        )
        final = scope.declare_local_operator(sklearn_operator_name_map[type(op.final_estimator_)], op.final_estimator_)
        final.inputs.append(merged)
        label = scope.declare_local_variable("stack_label", Int64TensorType())
        proba = scope.declare_local_variable("stack_proba", _numeric_type(precision)())
        final.outputs.extend([label, proba])
        cast = _node(scope, container, "Cast", [proba.full_name], "stack_proba_cast", to=_proto(precision))
        container.add_node(
            "Identity", [cast], [operator.outputs[1].full_name], name=scope.get_unique_operator_name("Identity")
        )
        _write_label(scope, container, operator, cast)

    return convert


def _ensemble_shape(precision: str):
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.common.data_types import Int64TensorType

    numeric = _numeric_type(precision)

    def calculate(operator):
        operator.outputs[0].type = Int64TensorType([None])
        operator.outputs[1].type = numeric([None, len(operator.raw_operator.classes_)])

    return calculate


# --- Regressors over raw columns ----------------------------------------------------------------
def _member_prediction(scope, container, operator, member, precision: str) -> str:
    """Declare the regressor ``member`` over all the operator's inputs; its [N, 1] predictions' name."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.proto import onnx_proto

    # a type skl2onnx does not know (a TransformedTargetRegressor) is found by its class in the
    # custom converters, as at the top of the graph
    sub = scope.declare_local_operator(sklearn_operator_name_map.get(type(member)), member)
    sub.inputs = list(operator.inputs)
    prediction = scope.declare_local_variable("member_prediction", _numeric_type(precision)())
    sub.outputs.append(prediction)
    cast = _node(scope, container, "Cast", [prediction.full_name], "member_prediction_cast", to=_proto(precision))
    shape = _const(scope, container, "column", onnx_proto.TensorProto.INT64, [-1, 1])
    return _node(scope, container, "Reshape", [cast, shape], "member_column")


def _voting_regressor_converter(precision: str):
    """The weighted mean of the members' predictions (``np.average`` as scikit-learn computes it)."""

    def convert(scope, operator, container):
        op = operator.raw_operator
        members = [m for m in op.estimators_ if m is not None and m != "drop"]
        weights = np.ones(len(members)) if op.weights is None else np.asarray(op.weights, dtype=np.float64)
        weights = weights / weights.sum()
        terms = []
        for member, weight in zip(members, weights, strict=True):
            prediction = _member_prediction(scope, container, operator, member, precision)
            scale = _const(scope, container, "weight", _proto(precision), [weight], [])
            terms.append(_node(scope, container, "Mul", [prediction, scale], "weighted"))
        total = terms[0] if len(terms) == 1 else _node(scope, container, "Sum", terms, "voting_sum")
        container.add_node(
            "Identity", [total], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Identity")
        )

    return convert


def _stacking_regressor_converter(precision: str):
    """Members' predictions side by side, then the final regressor (skl2onnx's own converter feeds
    every member the first input only)."""

    def convert(scope, operator, container):
        # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
        from skl2onnx._supported_operators import sklearn_operator_name_map

        op = operator.raw_operator
        if op.passthrough:
            raise ConversionRefused("stacking with passthrough columns is not converted")
        features = [
            _member_prediction(scope, container, operator, member, precision)
            for member in op.estimators_
            if member != "drop"
        ]
        merged = scope.declare_local_variable("stack_features", _numeric_type(precision)([None, len(features)]))
        container.add_node(
            "Concat", features, [merged.full_name], axis=1, name=scope.get_unique_operator_name("Concat")
        )
        final = scope.declare_local_operator(sklearn_operator_name_map[type(op.final_estimator_)], op.final_estimator_)
        final.inputs.append(merged)
        prediction = scope.declare_local_variable("stack_prediction", _numeric_type(precision)())
        final.outputs.append(prediction)
        container.add_node(
            "Cast",
            [prediction.full_name],
            [operator.outputs[0].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )

    return convert


def _target_transform_converter(precision: str):
    """TransformedTargetRegressor: the fitted regressor, then the inverse of the target transform
    in double (expm1 as Exp − 1: the prediction is a price, not a log; a standard scaling as
    y · scale + mean). Nested wrappers (log1p around a scaled target) convert one inside the other."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.proto import onnx_proto

    double = onnx_proto.TensorProto.DOUBLE

    def convert(scope, operator, container):
        op = operator.raw_operator
        transform = target_transform(op)
        if transform is None:
            raise ConversionRefused("target transforms other than log1p/expm1 and standard scaling are not converted")
        prediction = _member_prediction(scope, container, operator, op.regressor_, precision)
        prediction = _node(scope, container, "Cast", [prediction], "target_d", to=double)
        if transform == "log1p":
            raised = _node(scope, container, "Exp", [prediction], "target_exp")
            one = _const(scope, container, "one", double, [1.0], [])
            prediction = _node(scope, container, "Sub", [raised, one], "target_expm1")
        elif transform == "standard":  # StandardScaler.inverse_transform: y · scale + mean
            scaler = op.transformer_
            if getattr(scaler, "scale_", None) is not None:
                scale = _const(scope, container, "target_scale", double, [float(scaler.scale_[0])], [])
                prediction = _node(scope, container, "Mul", [prediction, scale], "target_scaled")
            if getattr(scaler, "mean_", None) is not None and scaler.with_mean:
                mean = _const(scope, container, "target_mean", double, [float(scaler.mean_[0])], [])
                prediction = _node(scope, container, "Add", [prediction, mean], "target_unscaled")
        container.add_node(
            "Cast",
            [prediction],
            [operator.outputs[0].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )

    return convert


def _svr_converter(precision: str):
    """SVR written out in double (onnxruntime's ``SVMRegressor`` has no double kernel, and its
    float32 one misses 1e-5 on targets in the thousands): the kernel between the rows and the
    support vectors, times the dual coefficients, plus the intercept."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx.proto import onnx_proto

    double = onnx_proto.TensorProto.DOUBLE

    def convert(scope, operator, container):
        op = operator.raw_operator
        if op.kernel not in ("linear", "poly", "rbf", "sigmoid"):
            raise ConversionRefused(f"SVR with a {op.kernel!r} kernel is not converted")
        vectors = np.asarray(op.support_vectors_, dtype=np.float64)
        x = _node(scope, container, "Cast", [_concat(scope, container, operator.inputs)], "svr_x", to=double)
        support = _const(scope, container, "svr_vectors_t", double, vectors.T.ravel().tolist(), list(vectors.T.shape))
        dot = _node(scope, container, "MatMul", [x, support], "svr_dot")
        gamma = _const(scope, container, "svr_gamma", double, [float(op._gamma)], [])  # noqa: SLF001
        if op.kernel == "linear":
            kernel = dot
        elif op.kernel == "rbf":  # |x − v|² = |x|² − 2 x·v + |v|²
            squares = _node(scope, container, "Mul", [x, x], "svr_x2")
            axes = _const(scope, container, "svr_axes", onnx_proto.TensorProto.INT64, [1])
            norms = _node(scope, container, "ReduceSum", [squares, axes], "svr_xnorm", keepdims=1)
            v_norms = _const(
                scope, container, "svr_vnorm", double, (vectors**2).sum(axis=1).tolist(), [1, len(vectors)]
            )
            minus_two = _const(scope, container, "svr_m2", double, [-2.0], [])
            distance = _node(
                scope,
                container,
                "Add",
                [norms, _node(scope, container, "Mul", [dot, minus_two], "svr_m2dot")],
                "svr_d1",
            )
            distance = _node(scope, container, "Add", [distance, v_norms], "svr_d2")
            zero = _const(scope, container, "svr_zero", double, [0.0], [])
            distance = _node(scope, container, "Max", [distance, zero], "svr_d")
            scaled = _node(scope, container, "Mul", [distance, gamma], "svr_gd")
            kernel = _node(scope, container, "Exp", [_node(scope, container, "Neg", [scaled], "svr_neg")], "svr_k")
        else:
            coef0 = _const(scope, container, "svr_coef0", double, [float(op.coef0)], [])
            inner = _node(
                scope, container, "Add", [_node(scope, container, "Mul", [dot, gamma], "svr_g"), coef0], "svr_in"
            )
            if op.kernel == "poly":
                degree = _const(scope, container, "svr_degree", double, [float(op.degree)], [])
                kernel = _node(scope, container, "Pow", [inner, degree], "svr_k")
            else:
                kernel = _node(scope, container, "Tanh", [inner], "svr_k")
        dual = np.asarray(op.dual_coef_, dtype=np.float64)  # [1, n_support]
        weights = _const(scope, container, "svr_dual", double, dual.T.ravel().tolist(), [dual.shape[1], 1])
        intercept = _const(scope, container, "svr_intercept", double, [float(np.ravel(op.intercept_)[0])], [])
        total = _node(
            scope,
            container,
            "Add",
            [_node(scope, container, "MatMul", [kernel, weights], "svr_sum"), intercept],
            "svr_y",
        )
        container.add_node(
            "Cast",
            [total],
            [operator.outputs[0].full_name],
            to=_proto(precision),
            name=scope.get_unique_operator_name("Cast"),
        )

    return convert


def _regressor_shape(precision: str):
    numeric = _numeric_type(precision)

    def calculate(operator):
        operator.outputs[0].type = numeric([None, 1])

    return calculate


# --- The table for one attempt -------------------------------------------------------------------
def converters_for(precision: str, model) -> tuple[dict, dict]:
    """(custom_conversion_functions, custom_shape_calculators) for a "double" or "float" attempt at
    converting ``model`` (whose ``DatetimeParts`` classes are found in it: ``onnx_model.datetime_parts_classes``)."""
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter, get_shape_calculator

    converters = {
        SimpleImputer: _imputer_converter(),
        OneHotEncoder: _cast_output(_onehot_converter(), precision),
        TargetEncoder: _target_encoder_converter(precision),
        OrdinalEncoder: _ordinal_converter(precision),
        TfidfVectorizer: _tfidf_converter(precision),
        VotingClassifier: _voting_converter(precision),
        StackingClassifier: _stacking_converter(precision),
        VotingRegressor: _voting_regressor_converter(precision),
        StackingRegressor: _stacking_regressor_converter(precision),
        TransformedTargetRegressor: _target_transform_converter(precision),
        SVR: _svr_converter(precision),
    }
    shapes = {
        SimpleImputer: _imputer_shape_calculator(),
        OrdinalEncoder: _ordinal_shape(precision),
        TfidfVectorizer: _tfidf_shape(precision),
        VotingClassifier: _ensemble_shape(precision),
        StackingClassifier: _ensemble_shape(precision),
        VotingRegressor: _regressor_shape(precision),
        StackingRegressor: _regressor_shape(precision),
        TransformedTargetRegressor: _regressor_shape(precision),
        SVR: _regressor_shape(precision),
    }
    for cls in datetime_parts_classes(model):
        converters[cls] = _datetime_parts_converter(precision)
        shapes[cls] = _datetime_parts_shape(precision)
    shapes[OneHotEncoder] = _onehot_shape(get_shape_calculator(sklearn_operator_name_map[OneHotEncoder]), precision)
    shapes[TargetEncoder] = _target_encoder_shape(precision)
    for cls in (
        HistGradientBoostingClassifier,
        RandomForestClassifier,
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
        ExtraTreesRegressor,
        GradientBoostingRegressor,
        DecisionTreeRegressor,
    ):
        converters[cls] = _tree_converter(get_converter(sklearn_operator_name_map[cls]), double_thresholds=True)
    for cls in (KNeighborsClassifier, KNeighborsRegressor):
        converters[cls] = _knn_converter(get_converter(sklearn_operator_name_map[cls]))
    for cls in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        converters[cls] = _hgb_categorical_converter(converters[cls], precision)
        shapes[cls] = _hgb_shape(get_shape_calculator(sklearn_operator_name_map[cls]), precision)
    for cls in (DecisionTreeClassifier,):
        converters[cls] = _tree_converter(get_converter(sklearn_operator_name_map[cls]), double_thresholds=False)
    return converters, shapes


def register_lightgbm() -> bool:
    """Register onnxmltools' LightGBM converter with skl2onnx when onnxmltools is installed."""
    try:
        # deferred: onnxmltools is optional (heavy too): without it LightGBM models stay skops-only
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
    except ImportError:
        return False
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        _tree_converter(convert_lightgbm, double_thresholds=True),
    )
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        # LightGBM compares doubles: float32 thresholds move splits for double inputs
        _tree_converter(convert_lightgbm, double_thresholds=True),
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    return True
