"""An ONNX twin of a scikit-learn pipeline, for fast scoring — used only once it is proven equal.

``try_convert(pipeline, signature, X_sample)`` first looks for reasons known up front
(``onnx_model.preflight``: a part without a converter, native categorical splits, a date column
read without date parts...) and refuses such a model at once. Otherwise it converts with skl2onnx
(the studio's own converters in ``onnx_converters``), runs the ONNX model in onnxruntime on
``X_sample`` (the validation rows) *plus* probe rows derived from it (each column set to null,
each label column set to a category never seen in training) and compares with the pipeline's
``predict_proba``: the largest absolute difference must be at most ``TOLERANCE`` (1e-5) and the
predicted labels (the most probable class) must be the same, except on rows where scikit-learn's
own top two probabilities are within ``TOLERANCE`` of each other (a near tie that float32
rounding may break either way). A regressor (``onnx_model.is_regressor``; its signature says
``"task": "regression"``) is compared on ``predict``: every prediction within ``TOLERANCE``
*relative* (``|onnx − sklearn| / max(|sklearn|, 1)``: prices in the thousands are compared
relatively, values near zero absolutely). Otherwise it returns ``(None, report)``: ``report["reason"]`` is
a sentence for the model page, ``report["detail"]`` the technical text (converter or onnxruntime
errors), and the model is served from its skops file.

How inputs reach the ONNX model (``onnx_feed``; the same code runs in verification and serving):
one input per signature column that the model reads, shaped ``[rows, 1]`` and named exactly as the
column (the graph is converted with aliases and its inputs renamed back, so names with spaces,
``/``, dots, unicode or leading digits work). The feed kind of each input is stored in the ONNX
file's metadata (``studio_feed``):

* ``double`` / ``float``: numbers (numeric, integer and 0/1 columns). Conversion is tried in that
  order (``NUMERIC_PRECISIONS``) and the first attempt that also passes the check is kept
  (``report["numeric_inputs"]``). Double precision matters for tree models, which compare float64
  values with their thresholds: in float32, values within rounding of a threshold take the other
  branch.
* ``string``: labels, a missing label as the string ``"nan"`` (how skl2onnx writes the NaN
  category that scikit-learn encoders learn); a model whose training labels include the literal
  string ``"nan"`` is therefore not converted. ``bool``: ``"True"``/``"False"``. ``number_label``:
  numbers the featurizer reads as labels, written as it writes them (``3.0`` → ``"3"``).
* ``text``: free text for TF-IDF, lower-cased here (``str.lower``, as scikit-learn; onnxruntime's
  ``StringNormalizer`` needs a named locale a server may lack), a missing value as ``""`` (as the
  featurizer's ``CastColumns``).
* ``datetime``: whole seconds since 1970 as float64 (UTC for zone-aware columns, NaN for missing),
  from which the graph computes the date parts.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd

from . import onnx_model
from .onnx_converters import ConversionRefused, converters_for, exact_neighbour_weights, register_lightgbm
from .onnx_feed import FEED_METADATA, MISSING_LABEL, make_session, onnx_feed, session_io
from .signature import REGRESSION, Signature, json_labels, unused_columns

TOLERANCE = 1e-5
MAX_CHECK_ROWS = 5_000
PROBE_ROWS = 20
UNSEEN_LABEL = "__studio_unseen_category__"
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
# Numbers reach the model as float64 when the converters allow it (split thresholds compare as in
# scikit-learn), else as float32; the first that converts *and* verifies is kept.
NUMERIC_PRECISIONS = ("double", "float")
PRECISION_WORDS = {"double": "64-bit", "float": "32-bit"}


def feed_kinds(pipeline, signature: Signature, used: list, precision: str) -> dict[str, str]:
    """{column: feed kind} for the columns the model reads; refuses what no input type fits."""
    roles = onnx_model.column_roles(pipeline)
    kinds = {}
    for spec in used:
        role = roles.get(spec.name, set())
        if spec.kind == "datetime":
            if role != {"datetime"}:
                raise ConversionRefused(f"the date column {spec.name!r} is read without date parts")
            kinds[spec.name] = "datetime"
        elif spec.kind in ("number", "integer", "flag"):
            if role == {"label"}:
                kinds[spec.name] = "number_label"
            elif "label" in role or "text" in role or "datetime" in role:
                raise ConversionRefused(f"the column {spec.name!r} is read both as numbers and as labels")
            else:
                kinds[spec.name] = precision
        elif spec.kind == "boolean":
            if role - {"label", "raw"}:
                raise ConversionRefused(f"the yes/no column {spec.name!r} is read as numbers or text")
            kinds[spec.name] = "bool"
        elif "text" in role:
            if role != {"text"}:
                raise ConversionRefused(f"the column {spec.name!r} is read both as text and as labels")
            kinds[spec.name] = "text"
        elif role - {"label", "raw"}:
            raise ConversionRefused(f"the label column {spec.name!r} is read as numbers")
        else:
            kinds[spec.name] = "string"
    return kinds


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


def compare_predictions(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Largest absolute and relative differences of two prediction columns (regression)."""
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    candidate = np.asarray(candidate, dtype=np.float64)
    if candidate.size != reference.size:
        return {"max_abs_diff": None, "max_rel_diff": None, "shape": [[len(reference), 1], list(candidate.shape)]}
    candidate = candidate.reshape(-1)
    if not len(reference):
        return {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "label_mismatches": 0}
    gap = np.abs(reference - candidate)
    if (np.isnan(candidate) != np.isnan(reference)).any():
        return {"max_abs_diff": float("inf"), "max_rel_diff": float("inf"), "label_mismatches": 0}
    relative = gap / np.maximum(np.abs(reference), 1.0)
    return {
        "max_abs_diff": float(np.nanmax(gap)),
        "max_rel_diff": float(np.nanmax(relative)),
        "label_mismatches": 0,
    }


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

    The report is JSON: ``{"converted", "reason", "detail", "sha256", "size_bytes", "rows_checked",
    "probe_rows", "max_abs_diff", "label_mismatches", "near_tie_mismatches", "tolerance", "inputs",
    "output", "opset", "seconds", "versions", "attempts"}`` (a regressor's: also "task" and
    "max_rel_diff"). Nothing here raises for a model that
    does not convert: the reason (a sentence for people) is in ``report["reason"]``, the technical
    text, if any, in ``report["detail"]``.
    """
    started = time.monotonic()
    if not isinstance(signature, Signature):
        signature = Signature(signature)
    report: dict = {
        "converted": False,
        "reason": None,
        "detail": None,
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
    except Exception as exc:  # noqa: BLE001 - any failure means "serve the skops file"
        onnx_bytes, report["reason"] = None, "the ONNX conversion failed unexpectedly"
        report["detail"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    report["seconds"] = round(time.monotonic() - started, 3)
    if onnx_bytes is not None:
        report["converted"] = True
        report["sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
        report["size_bytes"] = len(onnx_bytes)
    return onnx_bytes, report


def _versions() -> dict:
    # deferred: onnx is heavy to import and only ONNX conversion or serving needs it
    import onnx
    import onnxruntime
    import skl2onnx

    return {"skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _convert_and_verify(pipeline, signature: Signature, X_sample: pd.DataFrame, report: dict) -> bytes | None:
    if not isinstance(X_sample, pd.DataFrame) or len(X_sample) == 0:
        raise ConversionRefused("no sample rows to verify the conversion on")
    regression = signature.task == REGRESSION
    if regression != onnx_model.is_regressor(pipeline):
        raise ConversionRefused(f"the signature is a {signature.task}'s and the model is not")
    if regression:
        report["task"] = REGRESSION
    else:
        if not hasattr(pipeline, "predict_proba"):
            raise ConversionRefused("the model has no predict_proba")
        classes = json_labels(getattr(pipeline, "classes_", []))
        if signature.classes is not None and classes != signature.classes:
            raise ConversionRefused(f"the signature's classes {signature.classes} are not the model's {classes}")
        report["classes"] = classes
    # Reasons known without converting come first: they cost microseconds, a conversion seconds.
    if onnx_model.contains_lightgbm(pipeline) and not register_lightgbm():
        raise ConversionRefused("LightGBM models need onnxmltools to convert (not installed)")
    reason = onnx_model.preflight(pipeline)
    if reason:
        raise ConversionRefused(reason)
    unused = unused_columns(pipeline, signature.names)
    used = [spec for spec in signature.columns if spec.name not in unused]
    for spec in used:
        if spec.kind == "string" and spec.categories and MISSING_LABEL in spec.categories:
            raise ConversionRefused(f"column {spec.name!r} has the category 'nan', which ONNX inputs use for missing")
    feed_kinds(pipeline, signature, used, NUMERIC_PRECISIONS[0])  # refuses unreadable columns up front

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

    scores = pipeline.predict if regression else pipeline.predict_proba
    try:
        reference = scores(frame)
    except Exception as exc:  # noqa: BLE001 - the model itself refuses the probe rows (nulls)
        # Such inputs fail on the skops path too; check the conversion on the sample rows alone.
        report["probes_skipped"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        probes = probes.iloc[:0]
        batch = signature.validate_frame(sample.reset_index(drop=True))
        frame = batch.to_frame(signature)
        reference = scores(frame)
    aliases = {spec.name: f"input_{i}" for i, spec in enumerate(used)}
    model = onnx_model.prepare(pipeline, aliases)
    report["rows_checked"] = len(frame)
    report["probe_rows"] = len(probes)
    report["attempts"] = []
    for precision in NUMERIC_PRECISIONS:
        kinds = feed_kinds(pipeline, signature, used, precision)
        try:
            onnx_bytes = _attempt(model, signature, used, kinds, aliases, precision, batch, reference, report)
        except ConversionRefused as exc:
            report["attempts"].append({"numeric": precision, "reason": str(exc), "detail": None})
        except Exception as exc:  # noqa: BLE001 - converter failures are many and varied
            report["attempts"].append(
                {
                    "numeric": precision,
                    "reason": "the ONNX converter could not translate this model",
                    "detail": f"{type(exc).__name__}: {str(exc)[:300]}",
                }
            )
        else:
            report["attempts"].append({"numeric": precision, "reason": None, "detail": None})
            report["numeric_inputs"] = precision
            return onnx_bytes
        if not any(kind == precision for kind in kinds.values()):
            break  # no numeric input: the other precision would build the same graph
    details = [f"{PRECISION_WORDS[a['numeric']]} numbers: {a['detail']}" for a in report["attempts"] if a["detail"]]
    report["detail"] = "; ".join(details) or None
    raise ConversionRefused(_overall_reason(report["attempts"]))


def _overall_reason(attempts: list[dict]) -> str:
    reasons = list(dict.fromkeys(a["reason"] for a in attempts))
    if len(reasons) == 1:
        return reasons[0]
    return "; ".join(f"with {PRECISION_WORDS[a['numeric']]} numbers, {a['reason']}" for a in attempts)


def _attempt(model, signature, used, kinds, aliases, precision, batch, reference, report) -> bytes:
    # deferred: skl2onnx is heavy to import and only an ONNX conversion needs it
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    types = {"double": DoubleTensorType, "float": FloatTensorType, "datetime": DoubleTensorType}
    initial_types = [(aliases[spec.name], types.get(kinds[spec.name], StringTensorType)([None, 1])) for spec in used]
    converters, shapes = converters_for(precision, model)
    final = onnx_model.final_classifier(model)
    regression = signature.task == REGRESSION
    options = {} if regression else {id(final): {"zipmap": False}}
    for part_options in (onnx_model.text_options(model), onnx_model.neighbour_options(model)):
        for part, given in part_options.items():
            options[part] = {**options.get(part, {}), **given}  # the final classifier may be a k-NN
    onx = convert_sklearn(
        model,
        initial_types=initial_types,
        options=options,
        target_opset=TARGET_OPSET,
        custom_conversion_functions=converters,
        custom_shape_calculators=shapes,
    )
    _rename_inputs(onx, {alias: name for name, alias in aliases.items()})
    _cast_numeric_outputs(onx, precision)
    exact_neighbour_weights(onx)
    onx.metadata_props.add(key=FEED_METADATA, value=json.dumps({spec.name: kinds[spec.name] for spec in used}))
    onnx_bytes = onx.SerializeToString()
    session = make_session(onnx_bytes, log_severity=4)
    inputs, output = session_io(session, signature)
    candidate = session.run([output], onnx_feed(batch.columns, inputs))[0]
    if regression:
        result = compare_predictions(reference, candidate)
        report.update(result)
        if result["max_abs_diff"] is None:
            raise ConversionRefused(f"the ONNX model gives predictions of shape {result['shape'][1]}")
        if not result["max_rel_diff"] <= TOLERANCE:
            raise ConversionRefused(
                f"the ONNX copy's predictions differ from the model's by up to {result['max_rel_diff']:.2g} "
                f"relative (allowed: {TOLERANCE:g})"
            )
        report["inputs"] = [{"name": name, "type": kind} for name, kind in inputs]
        report["output"] = output
        return onnx_bytes
    result = compare(reference, candidate)
    report.update(result)
    if result["max_abs_diff"] is None:
        raise ConversionRefused(
            f"the ONNX model gives probabilities of shape {result['shape'][1]}, expected {result['shape'][0]}"
        )
    if not result["max_abs_diff"] <= TOLERANCE:
        raise ConversionRefused(
            f"the ONNX copy's probabilities differ from the model's by up to {result['max_abs_diff']:.2g} "
            f"(allowed: {TOLERANCE:g})"
        )
    if result["label_mismatches"]:
        raise ConversionRefused(f"the ONNX copy predicts another class on {result['label_mismatches']} checked rows")
    report["inputs"] = [{"name": name, "type": kind} for name, kind in inputs]
    report["output"] = output
    return onnx_bytes


def _rename_inputs(onx, names: dict[str, str]) -> None:
    """Give the graph's inputs the signature's column names (ONNX names may be any string)."""
    graph = onx.graph
    for item in graph.input:
        if item.name in names:
            item.name = names[item.name]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in names:
                node.input[i] = names[name]


def _cast_numeric_outputs(onx, precision: str) -> None:
    """End every numeric graph output with a Cast to the attempt's precision: skl2onnx may declare
    an output float while the nodes before it compute double (or the reverse), which onnxruntime
    refuses; the Cast makes the declared type true whatever the converters did."""
    # deferred: onnx is heavy to import and only ONNX conversion or serving needs it
    from onnx import TensorProto, helper

    proto = TensorProto.DOUBLE if precision == "double" else TensorProto.FLOAT
    for output in onx.graph.output:
        tensor = output.type.tensor_type
        if tensor.elem_type not in (TensorProto.FLOAT, TensorProto.DOUBLE):
            continue
        raw = f"{output.name}__uncast"
        for node in onx.graph.node:
            node.output[:] = [raw if name == output.name else name for name in node.output]
            node.input[:] = [raw if name == output.name else name for name in node.input]
        onx.graph.node.append(helper.make_node("Cast", [raw], [output.name], to=proto, name=f"{output.name}__cast"))
        tensor.elem_type = proto
