"""An ONNX model that names an external data file is refused wherever the tensor hides: onnxruntime
would read that file (any path under its working folder) into the model, and scoring would serve it."""

import onnx
import pytest
from onnx import TensorProto, helper

from modelformat.model_import import ImportRefused, onnx_prepare
from modelformat.onnx_checks import refers_to_external_data
from modelformat.onnx_converters import ConversionRefused
from modelformat.onnx_export import make_session


def external_constant_graph(name="g"):
    tensor = onnx.TensorProto(name="leak", data_type=TensorProto.UINT8, dims=[15])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "manage.py"), ("length", "15")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Constant", [], ["y"], value=tensor)
    unused = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])  # a model has an input
    return helper.make_graph([node], name, [unused], [helper.make_tensor_value_info("y", TensorProto.UINT8, [15])])


def in_a_branch():
    flag = helper.make_tensor_value_info("flag", TensorProto.BOOL, [])  # a model has an input
    branch = helper.make_node("If", ["flag"], ["y"], then_branch=external_constant_graph("a"),
                              else_branch=external_constant_graph("b"))  # fmt: skip
    return helper.make_graph([branch], "outer", [flag], [helper.make_tensor_value_info("y", TensorProto.UINT8, [15])])


@pytest.mark.parametrize("graph", [external_constant_graph(), in_a_branch()], ids=["node attribute", "sub-graph"])
def test_external_data_anywhere_is_refused(graph):
    model = helper.make_model(graph).SerializeToString()
    assert refers_to_external_data(helper.make_model(graph).graph)
    with pytest.raises(ConversionRefused, match="external data"):
        make_session(model)
    with pytest.raises(ImportRefused, match="external data"):
        onnx_prepare(model, {"columns": []})


def test_a_plain_constant_is_not_external():
    node = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0]))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    assert not refers_to_external_data(graph)
