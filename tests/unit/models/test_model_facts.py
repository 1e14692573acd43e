"""`inspect_model`: digest, opset, signature and quantization of real ONNX files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from onnx_models import (
    classifier,
    if_with_branch,
    int4_matmul_nbits,
    int8_twin,
    save,
    with_initializer,
    with_local_function,
)

from edgepolicy.errors import ModelInputError
from edgepolicy.models.facts import inspect_model, quantization_level


@pytest.fixture
def fp32_model(tmp_path: Path) -> Path:
    return save(classifier(), tmp_path / "fp32.onnx")


def test_fp32_classifier_facts(fp32_model: Path) -> None:
    content = fp32_model.read_bytes()
    assert inspect_model(fp32_model) == {
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content),
        "opset": 17,
        "inputs": [{"name": "x", "type": "float32", "shape": [None, 4]}],
        "outputs": [{"name": "probabilities", "type": "float32", "shape": [None, 2]}],
        "quantization": "none",
        "externalData": [],
    }


def test_quantize_dynamic_twin_is_int8(fp32_model: Path, tmp_path: Path) -> None:
    twin = int8_twin(fp32_model, tmp_path / "int8.onnx")
    facts = inspect_model(twin)
    assert facts["quantization"] == "int8"
    assert facts["inputs"] == inspect_model(fp32_model)["inputs"]
    assert facts["sha256"] != inspect_model(fp32_model)["sha256"]


def test_fp16_weights_are_fp16(tmp_path: Path) -> None:
    model = save(classifier(weight_type=TensorProto.FLOAT16), tmp_path / "fp16.onnx")
    assert inspect_model(model)["quantization"] == "fp16"


@pytest.mark.parametrize(
    ("bits", "expected"), [(None, "int4"), (4, "int4"), (3, "int4"), (8, "int8")]
)
def test_matmul_nbits_follows_its_bits_attribute(
    tmp_path: Path, bits: int | None, expected: str
) -> None:
    model = save(int4_matmul_nbits(bits=bits), tmp_path / "nbits.onnx")
    assert inspect_model(model)["quantization"] == expected


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        (TensorProto.INT4, "int4"),
        (TensorProto.UINT4, "int4"),
        (TensorProto.INT8, "int8"),
        (TensorProto.UINT8, "int8"),
        (TensorProto.FLOAT16, "fp16"),
        (TensorProto.BFLOAT16, "fp16"),
        (TensorProto.FLOAT, "none"),
        (TensorProto.INT64, "none"),
    ],
)
def test_initializer_types(tmp_path: Path, data_type: int, expected: str) -> None:
    model = save(with_initializer(data_type), tmp_path / "typed.onnx")
    assert inspect_model(model)["quantization"] == expected


def test_precedence_int4_over_int8_over_fp16() -> None:
    fp16_and_int8 = classifier(weight_type=TensorProto.FLOAT16)
    fp16_and_int8.graph.initializer.append(onnx.helper.make_tensor("q", TensorProto.INT8, [1], [1]))
    assert quantization_level(fp16_and_int8) == "int8"
    fp16_and_int8.graph.initializer.append(
        onnx.helper.make_tensor("n", TensorProto.INT4, [2], [1, 2])
    )
    assert quantization_level(fp16_and_int8) == "int4"


@pytest.mark.parametrize("operator", ["DynamicQuantizeLinear"])
def test_operator_inside_an_if_branch_counts(operator: str) -> None:
    assert quantization_level(if_with_branch(operator)) == "int8"
    assert quantization_level(if_with_branch("Identity")) == "none"


def test_operator_inside_a_local_function_counts() -> None:
    assert quantization_level(with_local_function("MatMulInteger")) == "int8"
    assert quantization_level(with_local_function("Add")) == "none"


def test_operator_inside_an_if_inside_a_local_function_counts() -> None:
    assert quantization_level(with_local_function("MatMulInteger", inside_if=True)) == "int8"
    assert quantization_level(with_local_function("Add", inside_if=True)) == "none"


@pytest.mark.parametrize(
    "operator",
    ["QuantizeLinear", "DequantizeLinear", "ConvInteger", "QLinearMatMul", "QLinearConv"],
)
def test_int8_operators(operator: str) -> None:
    model = classifier()
    model.graph.node.append(onnx.helper.make_node(operator, ["x"], ["unused"]))
    assert quantization_level(model) == "int8"


def test_operator_in_a_custom_domain_does_not_count() -> None:
    model = classifier()
    model.graph.node.append(
        onnx.helper.make_node("MatMulInteger", ["x"], ["unused"], domain="example.custom")
    )
    assert quantization_level(model) == "none"


def test_quantize_linear_to_int4() -> None:
    model = classifier()
    model.graph.node.append(
        onnx.helper.make_node("QuantizeLinear", ["x", "s"], ["q"], output_dtype=TensorProto.INT4)
    )
    assert quantization_level(model) == "int4"


def test_external_data_is_never_read(tmp_path: Path) -> None:
    model = classifier(weight_type=TensorProto.FLOAT16)
    path = tmp_path / "model.onnx"
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    (tmp_path / "model.onnx.data").unlink()  # inspect must not need the weights
    content = path.read_bytes()
    facts = inspect_model(path)
    assert facts["externalData"] == ["model.onnx.data"]
    assert facts["sha256"] == hashlib.sha256(content).hexdigest()
    assert facts["size"] == len(content)
    assert facts["quantization"] == "fp16"


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "a/../../b", ""])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, location: str) -> None:
    model = classifier()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    path = save(model, tmp_path / "model.onnx")
    with pytest.raises(ModelInputError, match=r"model\.onnx: tensor 'W': external data location"):
        inspect_model(path)


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path: Path) -> None:
    model = classifier()
    model.graph.input.append(onnx.helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 2]))
    facts = inspect_model(save(model, tmp_path / "old-style.onnx"))
    assert [value["name"] for value in facts["inputs"]] == ["x"]


@pytest.mark.parametrize("content", [b"", b"not a model \xff\xfe" * 4])
def test_not_a_model(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelInputError, match=r"bad\.onnx: not an ONNX model"):
        inspect_model(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelInputError, match=r"absent\.onnx: cannot read"):
        inspect_model(tmp_path / "absent.onnx")
