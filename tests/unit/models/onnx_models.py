"""Small ONNX models built with onnx.helper for the model tests, and evaluation CSVs.

The classifier takes 4 float32 features and returns 2 class probabilities; with the default
weights class 1 wins exactly when the first feature is positive, so a test knows every
prediction from its data.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = 4
OPSET = 17

# Class 0 scores 0, class 1 scores the first feature: argmax is 1 exactly when x0 > 0.
FIRST_FEATURE_DECIDES = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], np.float32)


def classifier(
    weights: np.ndarray = FIRST_FEATURE_DECIDES,
    *,
    batch: int | str = "batch",
    weight_type: int = TensorProto.FLOAT,
) -> onnx.ModelProto:
    """MatMul + Add + Softmax over ``[batch, 4]`` float32 features, 2 classes.

    With ``weight_type`` FLOAT16 the weights are stored as float16 initializers and cast to
    float32 in the graph (a model with fp16 weights that still takes float32 input).
    """
    classes = weights.shape[1]
    bias = numpy_helper.from_array(np.zeros(classes, np.float32), "B")
    nodes = []
    if weight_type == TensorProto.FLOAT16:
        stored = numpy_helper.from_array(weights.astype(np.float16), "W16")
        nodes.append(helper.make_node("Cast", ["W16"], ["W"], to=TensorProto.FLOAT))
    else:
        stored = numpy_helper.from_array(weights.astype(np.float32), "W")
    nodes += [
        helper.make_node("MatMul", ["x", "W"], ["logits"]),
        helper.make_node("Add", ["logits", "B"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, weights.shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, classes])],
        [stored, bias],
    )
    return _model(graph)


def single_score(batch: int | str = "batch") -> onnx.ModelProto:
    """Output ``[batch, 1]`` holding the first feature: positive exactly when x0 > 0.5."""
    weights = numpy_helper.from_array(np.array([[1.0], [0.0], [0.0], [0.0]], np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["score"])],
        "score",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, FEATURES])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch, 1])],
        [weights],
    )
    return _model(graph)


def int4_matmul_nbits(*, bits: int | None = None) -> onnx.ModelProto:
    """A com.microsoft MatMulNBits node (weights packed by `bits`, 4 when the attribute is
    absent); the packed weights, scales and the input are graph inputs, so no initializer type
    says anything: only the operator does."""
    attributes = {"K": 32, "N": 8, "block_size": 32}
    if bits is not None:
        attributes["bits"] = bits
    node = helper.make_node(
        "MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft", **attributes
    )
    graph = helper.make_graph(
        [node],
        "nbits",
        [
            helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, 32]),
            helper.make_tensor_value_info("B", TensorProto.UINT8, [8, 1, 16]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [8]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
    )
    return _model(graph, extra_opsets={"com.microsoft": 1})


def with_initializer(data_type: int) -> onnx.ModelProto:
    """An Identity model carrying one initializer of ``data_type`` (and nothing quantized)."""
    values = [1, 2, 3, 4]
    tensor = helper.make_tensor("weights", data_type, [4], values)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "typed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [tensor],
    )
    return _model(graph, opset=21)


def if_with_branch(branch_op: str) -> onnx.ModelProto:
    """An If whose then-branch runs ``branch_op`` (e.g. DynamicQuantizeLinear) on the input;
    the main graph holds no quantized operator or initializer."""
    then_graph = helper.make_graph(
        [helper.make_node(branch_op, ["x"], ["q", "scale", "zero"])],
        "then",
        [],
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [2])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y_else"])],
        "else",
        [],
        [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [2])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=else_graph)],
        "branching",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])],
    )
    return _model(graph)


def with_local_function(body_op: str, *, inside_if: bool = False) -> onnx.ModelProto:
    """The graph calls a local function (domain ``local``) whose body runs ``body_op``, or,
    with ``inside_if``, an If whose then-branch runs it."""
    node = helper.make_node(body_op, ["a", "b"], ["c"])
    if inside_if:
        branch = helper.make_graph(
            [helper.make_node(body_op, ["a", "b"], ["t"])],
            "then",
            [],
            [helper.make_tensor_value_info("t", TensorProto.INT32, [2, 2])],
        )
        other = helper.make_graph(
            [helper.make_node("Identity", ["a"], ["e"])],
            "else",
            [],
            [helper.make_tensor_value_info("e", TensorProto.INT32, [2, 2])],
        )
        node = helper.make_node("If", ["a"], ["c"], then_branch=branch, else_branch=other)
    function = helper.make_function(
        "local", "Scaled", ["a", "b"], ["c"], [node], [helper.make_opsetid("", OPSET)]
    )
    graph = helper.make_graph(
        [helper.make_node("Scaled", ["a", "b"], ["c"], domain="local")],
        "calls",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 2]),
            helper.make_tensor_value_info("b", TensorProto.UINT8, [2, 2]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [2, 2])],
    )
    model = _model(graph, extra_opsets={"local": 1})
    model.functions.append(function)
    return model


def _model(
    graph: onnx.GraphProto, *, opset: int = OPSET, extra_opsets: dict[str, int] | None = None
) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(domain, v) for domain, v in (extra_opsets or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgepolicy-tests")
    model.ir_version = 10  # what onnxruntime 1.32 reads
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path`` and return the path."""
    onnx.save(model, str(path))
    return path


def int8_twin(fp32: Path, target: Path) -> Path:
    """The onnxruntime ``quantize_dynamic`` int8 twin of the model at ``fp32``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
    return target


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """Write a CSV with ``header`` and ``rows`` and return its path."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def disparate_dataset(rows: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (float32 [rows, 4]), labels (0/1) and groups ("a"/"b") with a known disparity:
    group a's first feature is shifted up, so the classifier selects a far more often."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(rows) < 0.5, "a", "b")
    features = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    features[:, 0] += np.where(groups == "a", 0.8, -0.8).astype(np.float32)
    labels = (features[:, 0] + rng.normal(scale=1.0, size=rows) > 0).astype(int)
    return features, labels, groups


def write_dataset(path: Path, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> Path:
    """Write the dataset as ``f1,f2,group,f3,f4,label`` (sensitive column between features,
    floats written with repr so the CSV holds exactly the float32 values)."""
    rows = [
        [
            repr(float(row[0])),
            repr(float(row[1])),
            group,
            repr(float(row[2])),
            repr(float(row[3])),
            label,
        ]
        for row, label, group in zip(features, labels, groups, strict=True)
    ]
    return write_csv(path, ["f1", "f2", "group", "f3", "f4", "label"], rows)
