"""`attest`: the facts file of a model directory, reproducible byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from onnx_models import classifier, disparate_dataset, int8_twin, save, write_dataset

from edgepolicy.errors import InputError, ModelInputError, UsageError
from edgepolicy.models.attestation import (
    FACTS_FILE_NAME,
    EvaluationRequest,
    attest,
    encode_facts,
    find_model,
    model_card_metadata,
    write_facts,
)
from edgepolicy.models.evaluation import evaluate_model
from edgepolicy.models.facts import inspect_model

CARD = """---
license: apache-2.0
intended_use: "defect detection on the line"
limitations: [night shifts]
date: 2026-01-02
---
# Defect detector
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    fp32 = save(classifier(), tmp_path / "fp32.onnx")
    int8_twin(fp32, directory / "model.onnx")
    (directory / "README.md").write_text(CARD)
    (directory / "shap.json").write_text('{"f1": 0.7}\n')
    return directory


@pytest.fixture
def eval_csv(tmp_path: Path) -> Path:
    """Evaluation data kept outside the model directory, as it usually is."""
    folder = tmp_path / "eval"
    folder.mkdir()
    return write_dataset(folder / "eval.csv", *disparate_dataset(300))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_facts_shape(model_dir: Path, eval_csv: Path) -> None:
    facts = attest(
        model_dir,
        evaluations=[EvaluationRequest(eval_csv, "label", "group")],
        explainability_report=model_dir / "shap.json",
        model_card=model_dir / "README.md",
    )
    model = model_dir / "model.onnx"
    assert facts["model"] == {"path": "model.onnx", **inspect_model(model)}
    assert facts["model"]["quantization"] == "int8"
    evaluation = evaluate_model(model, eval_csv, label="label", sensitive="group").to_json()
    evaluation["data"] = {"path": "../eval/eval.csv", "sha256": _sha256(eval_csv)}
    assert facts["evaluations"] == [evaluation]
    assert facts["explainability"] == {
        "report": {"path": "shap.json", "sha256": _sha256(model_dir / "shap.json")}
    }
    assert facts["modelCard"] == {
        "path": "README.md",
        "sha256": _sha256(model_dir / "README.md"),
        "metadata": {
            "license": "apache-2.0",
            "intended_use": "defect detection on the line",
            "limitations": ["night shifts"],
            "date": "2026-01-02",
        },
    }


def test_without_options_only_the_model(model_dir: Path) -> None:
    facts = attest(model_dir)
    assert set(facts) == {"model", "evaluations"}
    assert facts["evaluations"] == []


def test_written_file_is_reproducible(model_dir: Path, eval_csv: Path) -> None:
    holdout = write_dataset(eval_csv.parent / "holdout.csv", *disparate_dataset(100, seed=11))

    def run() -> bytes:
        facts = attest(
            model_dir,
            evaluations=[
                EvaluationRequest(eval_csv, "label", "group"),
                EvaluationRequest(holdout, "label", "group"),
            ],
            model_card=model_dir / "README.md",
        )
        return write_facts(model_dir, facts).read_bytes()

    first = run()
    assert run() == first  # the facts file now in DIR changes nothing
    assert first.endswith(b"}\n")
    parsed = json.loads(first)
    assert encode_facts(parsed) == first
    assert list(parsed) == sorted(parsed)
    assert [entry["data"]["path"] for entry in parsed["evaluations"]] == [
        "../eval/eval.csv",
        "../eval/holdout.csv",
    ]
    assert not list(model_dir.glob(".*partial"))


def test_model_option_relative_to_the_directory(model_dir: Path) -> None:
    save(classifier(), model_dir / "other.onnx")
    assert attest(model_dir, model=Path("other.onnx"))["model"]["path"] == "other.onnx"
    assert attest(model_dir, model=model_dir / "other.onnx")["model"]["quantization"] == "none"


def test_model_outside_the_directory_is_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="must be inside"):
        attest(model_dir, model=tmp_path / "fp32.onnx")


def test_no_model(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no \.onnx file in the directory"):
        find_model(tmp_path)


def test_several_models(model_dir: Path) -> None:
    (model_dir / "variants").mkdir()
    save(classifier(), model_dir / "variants" / "fp32.onnx")
    with pytest.raises(UsageError, match=r"2 \.onnx files \(model\.onnx, variants/fp32\.onnx\)"):
        find_model(model_dir)


def test_model_in_a_subfolder_and_hidden_folders_skipped(tmp_path: Path) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / ".cache").mkdir()
    save(classifier(), tmp_path / "onnx" / "model.onnx")
    save(classifier(), tmp_path / ".cache" / "stale.onnx")
    assert find_model(tmp_path) == tmp_path / "onnx" / "model.onnx"
    assert attest(tmp_path)["model"]["path"] == "onnx/model.onnx"


def test_external_data_paths_relative_to_the_directory(tmp_path: Path) -> None:
    (tmp_path / "onnx").mkdir()
    onnx.save(
        classifier(weight_type=TensorProto.FLOAT16),
        str(tmp_path / "onnx" / "model.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert attest(tmp_path)["model"]["externalData"] == ["onnx/weights.bin"]
    (tmp_path / "onnx" / "weights.bin").unlink()
    with pytest.raises(ModelInputError, match=r"model\.onnx: .*'weights\.bin', which is missing"):
        attest(tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        attest(tmp_path / "absent")


# Model card front matter.


def _card(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "README.md"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text", ["# No front matter\n", "", "---\n---\n# empty\n"])
def test_card_without_front_matter(tmp_path: Path, text: str) -> None:
    assert model_card_metadata(_card(tmp_path, text)) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "---\nlicense: mit\n# no closing fence\n",
            r"README\.md:1: the front matter .* not closed",
        ),
        ("---\nlicense: mit\nlicense: apache-2.0\n---\n", r"README\.md:3: .*license"),
        ("---\nlicense: [mit\n---\n", r"README\.md:\d+: invalid YAML"),
        ("---\n- a list\n---\n", r"README\.md:2: the front matter must be a YAML mapping"),
        ("---\nscore: .nan\n---\n", r"README\.md:2: .*score"),
    ],
)
def test_bad_front_matter(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        model_card_metadata(_card(tmp_path, text))


def test_front_matter_with_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_bytes(b"\xef\xbb\xbf---\r\nlicense: mit\r\n---\r\n# Card\r\n")
    assert model_card_metadata(path) == {"license": "mit"}


def test_facts_file_name() -> None:
    assert FACTS_FILE_NAME == "edgepolicy-facts.json"
