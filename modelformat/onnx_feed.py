"""How validated columns reach an ONNX twin, and its onnxruntime session: what serving needs of
ONNX, apart from the conversion (``onnx_export``, which imports scikit-learn and skl2onnx) so that
a replica serving a twin never imports them. See ``onnx_export`` for the feed kinds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .onnx_checks import refers_to_external_data
from .signature import Signature

MISSING_LABEL = "nan"
FEED_METADATA = "studio_feed"


class ConversionRefused(Exception):
    """The model cannot be converted, for a reason worth showing to the user."""


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


def _text_input(values) -> np.ndarray:
    return np.array([v.lower() if isinstance(v, str) else "" for v in values], dtype=object).reshape(-1, 1)


def _number_label_input(values) -> np.ndarray:
    floats = np.asarray(values, dtype=np.float64)
    out = [MISSING_LABEL if np.isnan(v) else (str(int(v)) if float(v).is_integer() else str(float(v))) for v in floats]
    return np.array(out, dtype=object).reshape(-1, 1)


def _double_input(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def _float_input(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 1)


def _datetime_input(values) -> np.ndarray:
    """Whole seconds since 1970 (UTC for zone-aware values), NaN for missing: what the graph's date
    parts are computed from. Whole seconds keep the arithmetic exact in float64."""
    series = pd.Series(values)
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    ticks = series.to_numpy(dtype="datetime64[s]", na_value=np.datetime64("NaT"))
    out = ticks.astype(np.int64).astype(np.float64)
    out[np.isnat(ticks)] = np.nan
    return out.reshape(-1, 1)


def onnx_feed(columns: dict, inputs: list[tuple[str, str]]) -> dict:
    """The onnxruntime feed for validated columns (``ValidatedBatch.columns``)."""
    return {name: _FEEDERS[kind](columns[name]) for name, kind in inputs}


_FEEDERS = {
    "double": _double_input,
    "float": _float_input,
    "string": _string_input,
    "bool": _bool_input,
    "text": _text_input,
    "number_label": _number_label_input,
    "datetime": _datetime_input,
}
_ONNX_TYPES = {
    "double": "tensor(double)",
    "float": "tensor(float)",
    "string": "tensor(string)",
    "bool": "tensor(string)",
    "text": "tensor(string)",
    "number_label": "tensor(string)",
    "datetime": "tensor(double)",
}


def make_session(onnx_bytes: bytes, *, log_severity: int = 3):
    """An onnxruntime session: CPU, one thread, sequential (many worker processes share the cores).

    Refuses models that reference external data files (an ONNX file may name paths; ours never do).
    """
    # deferred: onnx is heavy to import and only ONNX conversion or serving needs it
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(onnx_bytes)  # parsing never reads external files
    if refers_to_external_data(model.graph):
        raise ConversionRefused("the ONNX model references external data files")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = log_severity  # errors surface as exceptions; keep the log quiet
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _default_feed_kind(spec, onnx_type: str) -> str | None:
    """The feed kind of an input in an ONNX file without ``studio_feed`` metadata (older twins)."""
    if onnx_type == "tensor(string)":
        return {"string": "string", "boolean": "bool"}.get(spec.kind)
    if onnx_type in ("tensor(double)", "tensor(float)") and spec.kind in ("number", "integer", "flag"):
        return "double" if onnx_type == "tensor(double)" else "float"
    return None


def session_io(session, signature: Signature) -> tuple[list[tuple[str, str]], str]:
    """(inputs as [(column, feed kind)], name of the probabilities output) for a session."""
    declared = json.loads(session.get_modelmeta().custom_metadata_map.get(FEED_METADATA) or "{}")
    inputs = []
    for item in session.get_inputs():
        spec = signature.by_name.get(item.name)
        if spec is None:
            raise ConversionRefused(f"the ONNX model reads {item.name!r}, which is not a signature column")
        kind = declared.get(item.name) or _default_feed_kind(spec, item.type)
        if kind not in _FEEDERS or _ONNX_TYPES[kind] != item.type:
            raise ConversionRefused(f"the ONNX input {item.name!r} has type {item.type}")
        inputs.append((item.name, kind))
    outputs = [o for o in session.get_outputs() if o.type in ("tensor(float)", "tensor(double)")]
    named = [o for o in outputs if o.name == "probabilities"]
    chosen = (named or outputs)[:1]
    if not chosen:
        raise ConversionRefused("the ONNX model has no probabilities output")
    return inputs, chosen[0].name
