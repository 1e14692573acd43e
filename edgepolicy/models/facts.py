"""Facts about an ONNX model read from its file: digest, size, opset, inputs, outputs, quantization.

The model is parsed with ``onnx.load(path, load_external_data=False)``: weights kept in external
data files are never opened, only their names are reported (``externalData``). The digest and
size are those of the ``.onnx`` file itself, streamed.

Quantization is the highest level found, in the order ``int4`` > ``int8`` > ``fp16`` > ``none``,
over every graph of the model (the main graph, the bodies of If/Loop/Scan and of any node
attribute holding a graph, and the model's local functions):

- operators (in the ONNX and ``com.microsoft`` domains): ``MatMulNBits``, ``GatherBlockQuantized``
  (``bits`` attribute, 4 when absent: 4 or fewer bits is int4, more is int8) and ``MatMulBnb4``
  are int4; ``QuantizeLinear`` is int4 when its ``output_dtype`` attribute is INT4/UINT4; it and
  ``DequantizeLinear``, ``DynamicQuantizeLinear``, ``MatMulInteger``, ``ConvInteger``,
  ``QLinear*``, ``QGemm``, ``QAttention``, ``DynamicQuantizeMatMul``, ``MatMulIntegerToFloat`` and
  ``DynamicQuantizeLSTM`` are int8;
- initializer element types: INT4/UINT4 are int4, INT8/UINT8 are int8, FLOAT16/BFLOAT16 are fp16.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from edgepolicy.errors import ModelInputError
from edgepolicy.models.digests import file_digest

QUANTIZATION_LEVELS = ("none", "fp16", "int8", "int4")
"""Every value of ``quantization``, lowest precedence first."""

_OPERATOR_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})
_INT8_OPERATORS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "QGemm",
        "QAttention",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLSTM",
    }
)
# Operators with a `bits` attribute (default 4): weights packed in `bits`-bit blocks.
_NBITS_OPERATORS = frozenset({"MatMulNBits", "GatherBlockQuantized"})
_INT4_OPERATORS = frozenset({"MatMulBnb4"})
_INT4_TYPES = frozenset({onnx.TensorProto.INT4, onnx.TensorProto.UINT4})
_INT8_TYPES = frozenset({onnx.TensorProto.INT8, onnx.TensorProto.UINT8})
_FP16_TYPES = frozenset({onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16})
_TYPE_NAMES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
}


def inspect_model(path: Path) -> dict[str, Any]:
    """Return the facts of the ONNX model at ``path`` as a JSON-ready dict.

    Keys: ``sha256``, ``size``, ``opset`` (default-domain version, null when the model imports
    none), ``inputs`` and ``outputs`` (``name``, ``type``, ``shape`` with null for a symbolic or
    unknown dimension; initializers listed as graph inputs are left out), ``quantization`` and
    ``externalData`` (sorted locations of external data files, relative to the model's folder).

    Raises:
        ModelInputError: the file cannot be read, is not an ONNX model, or names an external
            data file outside its folder.
    """
    sha256, size = file_digest(path)
    model = load_graph(path)
    return {
        "sha256": sha256,
        "size": size,
        "opset": _default_opset(model),
        "inputs": _graph_inputs(model.graph),
        "outputs": [_value_facts(value) for value in model.graph.output],
        "quantization": quantization_level(model),
        "externalData": external_data_files(model, path),
    }


def load_graph(path: Path) -> onnx.ModelProto:
    """Parse the ONNX model at ``path`` without reading its external data.

    Raises:
        ModelInputError: the file cannot be read or is not an ONNX model.
    """
    try:
        model = onnx.load(str(path), format="protobuf", load_external_data=False)
    except OSError as error:
        raise ModelInputError(f"cannot read: {error.strerror or error}", path=str(path)) from error
    except (DecodeError, ValueError) as error:
        raise ModelInputError(f"not an ONNX model: {error}", path=str(path)) from error
    if not model.HasField("graph") or not model.graph.output:
        # An empty file parses as an empty ModelProto: refuse it rather than report no facts.
        raise ModelInputError("not an ONNX model: it has no graph with outputs", path=str(path))
    return model


def quantization_level(model: onnx.ModelProto) -> str:
    """Return ``int4``, ``int8``, ``fp16`` or ``none`` for ``model`` (the module docstring says
    how)."""
    level = 0
    for graph in _graphs(model):
        for tensor in _initializers(graph):
            level = max(level, _type_level(tensor.data_type))
        for node in graph.node:
            level = max(level, _operator_level(node))
    for function in model.functions:
        for node in function.node:
            level = max(level, _operator_level(node))
    return QUANTIZATION_LEVELS[level]


def external_data_files(model: onnx.ModelProto, path: Path) -> list[str]:
    """Return the sorted, distinct external data locations the tensors of ``model`` name.

    Raises:
        ModelInputError: a location is empty, absolute or leaves the model's folder (naming the
            tensor); onnxruntime refuses such models, and a signature over the folder would
            not cover the file.
    """
    locations: set[str] = set()
    for tensor in _all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        if not _is_inside_folder(location):
            raise ModelInputError(
                f"tensor {tensor.name!r}: external data location {location!r} must be a "
                "relative path inside the model's folder",
                path=str(path),
            )
        locations.add(PurePosixPath(location.replace("\\", "/")).as_posix())
    return sorted(locations)


def _is_inside_folder(location: str) -> bool:
    if not location or "\x00" in location:
        return False
    for flavour in (PurePosixPath(location), PureWindowsPath(location)):
        if flavour.is_absolute() or flavour.drive or ".." in flavour.parts:
            return False
    return True


def _default_opset(model: onnx.ModelProto) -> int | None:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    return None


def _graph_inputs(graph: onnx.GraphProto) -> list[dict[str, Any]]:
    # Before IR version 4 every initializer was also listed as an input; those are weights.
    weights = {tensor.name for tensor in graph.initializer}
    return [_value_facts(value) for value in graph.input if value.name not in weights]


def _value_facts(value: onnx.ValueInfoProto) -> dict[str, Any]:
    kind = value.type.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        tensor = getattr(value.type, kind)
        element = _type_name(tensor.elem_type)
        shape: list[int | None] | None = None
        if tensor.HasField("shape"):
            shape = [
                int(dim.dim_value) if dim.HasField("dim_value") else None
                for dim in tensor.shape.dim
            ]
        type_name = element if kind == "tensor_type" else f"sparse({element})"
        return {"name": value.name, "type": type_name, "shape": shape}
    kind_name = kind.removesuffix("_type") if kind else "unknown"
    return {"name": value.name, "type": kind_name, "shape": None}


def _type_name(element_type: int) -> str:
    if element_type in _TYPE_NAMES:
        return _TYPE_NAMES[element_type]
    try:
        return str(onnx.TensorProto.DataType.Name(element_type)).lower()
    except ValueError:
        return f"unknown({element_type})"


def _type_level(element_type: int) -> int:
    if element_type in _INT4_TYPES:
        return QUANTIZATION_LEVELS.index("int4")
    if element_type in _INT8_TYPES:
        return QUANTIZATION_LEVELS.index("int8")
    if element_type in _FP16_TYPES:
        return QUANTIZATION_LEVELS.index("fp16")
    return 0


def _operator_level(node: onnx.NodeProto) -> int:
    if node.domain not in _OPERATOR_DOMAINS:
        return 0
    op_type = node.op_type
    int4, int8 = QUANTIZATION_LEVELS.index("int4"), QUANTIZATION_LEVELS.index("int8")
    if op_type in _NBITS_OPERATORS:
        bits = _int_attribute(node, "bits", default=4)
        return int4 if bits <= 4 else int8
    if op_type in _INT4_OPERATORS:
        return int4
    if op_type == "QuantizeLinear":
        output_type = _int_attribute(node, "output_dtype", default=0)
        return int4 if output_type in _INT4_TYPES else int8
    if op_type in _INT8_OPERATORS or op_type.startswith("QLinear"):
        return int8
    return 0


def _int_attribute(node: onnx.NodeProto, name: str, *, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name and attribute.type == onnx.AttributeProto.INT:
            return int(attribute.i)
    return default


def _graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """Every graph of ``model``: the main graph and, depth first, each graph held by a node
    attribute (If/Loop/Scan bodies), including those inside local functions. An explicit stack:
    no crafted nesting exhausts Python's recursion limit."""
    stack: list[onnx.GraphProto] = [model.graph]
    for function in model.functions:
        for node in function.node:
            stack.extend(_subgraphs(node))
    while stack:
        graph = stack.pop()
        yield graph
        for node in graph.node:
            stack.extend(_subgraphs(node))


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor that may hold data: initializers (dense and sparse) and tensors held by
    node attributes (Constant values), in every graph and function."""
    nodes: list[onnx.NodeProto] = [node for function in model.functions for node in function.node]
    for graph in _graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        nodes.extend(graph.node)
    for node in nodes:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == onnx.AttributeProto.TENSORS:
                yield from attribute.tensors
            elif attribute.type == onnx.AttributeProto.SPARSE_TENSOR:
                yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
            elif attribute.type == onnx.AttributeProto.SPARSE_TENSORS:
                for sparse_tensor in attribute.sparse_tensors:
                    yield from (sparse_tensor.values, sparse_tensor.indices)
