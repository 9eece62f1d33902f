"""Checks on ONNX graphs read from files (pure: only the graph's protobuf objects)."""


def _graph_tensors(graph):
    """Every tensor a graph holds: initializers, sparse ones, and those in node attributes, in
    sub-graphs (If, Loop, Scan bodies) too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
            for sparse in attribute.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graph_tensors(subgraph)


def refers_to_external_data(graph) -> bool:
    """Whether any tensor of the graph names an external data file: onnxruntime would read that
    file (any path under its working folder) into the model, so a hostile model could serve it."""
    # deferred: onnx is heavy to import and only ONNX files need it
    from onnx import TensorProto

    return any(
        tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) for tensor in _graph_tensors(graph)
    )
