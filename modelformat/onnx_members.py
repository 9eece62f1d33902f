"""ONNX twins of a forecasting model's boosting members.

A forecasting model cannot be one ONNX graph: it parses a history, builds lag features and, for a
recursive member, predicts one step at a time from its own forecasts. What costs is the boosting
estimator called on each step's feature rows (scikit-learn's HistGradientBoosting walks its 300
trees from Python: ~3 ms a call, twelve calls for a year of months). Each such estimator is
converted alone (float64 feature rows in, the change out) and the graphs are put side by side in
one ``model.onnx``: member ``i``'s input and output names start with ``member{i}_``. The engine
keeps the rest; ``member_regressors`` gives it one callable per member.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .onnx_feed import make_session

PREFIX = "member{}_"


def members_to_onnx(estimators: dict[int, object], target_opset: dict) -> tuple[bytes | None, dict[int, str]]:
    """One ONNX model holding a graph per estimator that converts (by member position), and the
    reason of each that does not. None when none converts."""
    # deferred: onnx, skl2onnx and the converters (scikit-learn) are heavy to import; only packaging converts
    from onnx import compose, version_converter
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    from .onnx_converters import converters_for, register_lightgbm

    graphs, refused = [], {}
    for position, estimator in estimators.items():
        if type(estimator).__name__.startswith("LGBM") and not register_lightgbm():
            refused[position] = "onnxmltools is not installed (it converts LightGBM)"
            continue
        converters, shapes = converters_for("double", estimator)
        try:
            graph = convert_sklearn(
                estimator,
                initial_types=[("X", DoubleTensorType([None, int(estimator.n_features_in_)]))],
                target_opset=target_opset,
                custom_conversion_functions=converters,
                custom_shape_calculators=shapes,
            )
        except Exception as exc:  # noqa: BLE001 - a member that does not convert is served by its estimator
            refused[position] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        graphs.append(compose.add_prefix(graph, prefix=PREFIX.format(position)))
    if not graphs:
        return None, refused
    # the converters pick each graph's opset: side by side, every graph takes the highest
    opset = max(_default_opset(graph) for graph in graphs)
    graphs = [graph if _default_opset(graph) == opset else version_converter.convert_version(graph, opset)
              for graph in graphs]  # fmt: skip
    merged = graphs[0]
    for graph in graphs[1:]:
        merged = compose.merge_models(merged, graph, io_map=[])
    return merged.SerializeToString(), refused


def _default_opset(graph) -> int:
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def member_regressors(onnx_bytes: bytes) -> dict[int, Callable[[np.ndarray], np.ndarray]]:
    """One callable per member graph of ``members_to_onnx``'s model: feature rows in, predictions out.
    Each runs in its own session (a session wants every input of its graph fed)."""
    # deferred: onnx is heavy to import and only serving a forecasting twin needs it
    import onnx
    from onnx.utils import Extractor

    model = onnx.ModelProto.FromString(onnx_bytes)
    extractor = Extractor(model)
    outputs = {o.name.split("_", 1)[0]: o.name for o in model.graph.output}
    regressors = {}
    for graph_input in model.graph.input:
        member = graph_input.name.split("_", 1)[0]
        position = int(member.removeprefix("member"))
        output = outputs[member]
        part = extractor.extract_model([graph_input.name], [output])
        regressors[position] = _regressor(make_session(part.SerializeToString()), graph_input.name, output)
    return regressors


def _regressor(session, input_name: str, output: str) -> Callable[[np.ndarray], np.ndarray]:
    def predict(rows: np.ndarray) -> np.ndarray:
        feed = {input_name: np.ascontiguousarray(rows, dtype=np.float64)}
        return session.run([output], feed)[0].reshape(-1)

    return predict
