"""`edgepolicy model inspect|evaluate|attest` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from onnx_models import classifier, disparate_dataset, int8_twin, save, write_csv, write_dataset

from edgepolicy import cli
from edgepolicy.models.evaluation import evaluate_model
from edgepolicy.models.facts import inspect_model

REPO = Path(__file__).resolve().parents[3]
HEAVY_MODULES = ("onnx", "onnxruntime", "fairlearn", "sklearn", "pandas")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    int8_twin(save(classifier(), tmp_path / "fp32.onnx"), directory / "model.onnx")
    return directory


@pytest.fixture
def eval_csv(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "eval.csv", *disparate_dataset(200))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_prints_the_facts(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = model_dir / "model.onnx"
    code, out, _ = _run(capsys, "model", "inspect", str(model))
    assert code == 0
    assert json.loads(out) == inspect_model(model)
    assert json.loads(out)["quantization"] == "int8"


def test_evaluate_prints_one_metrics_block(
    model_dir: Path, eval_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = model_dir / "model.onnx"
    code, out, _ = _run(
        capsys, "model", "evaluate", str(model), "--data", str(eval_csv), "--label", "label",
        "--sensitive", "group",
    )  # fmt: skip
    assert code == 0
    printed = json.loads(out)
    expected = evaluate_model(model, eval_csv, label="label", sensitive="group")
    assert printed["metrics"] == {
        "accuracy": expected.accuracy,
        "demographicParityDifference": expected.demographic_parity_difference,
        "equalizedOddsDifference": expected.equalized_odds_difference,
    }
    assert printed["selectionRates"] == dict(expected.selection_rates)
    assert printed["data"]["path"] == str(eval_csv)


def test_evaluate_several_sensitive_columns_each_as_if_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save(classifier(), tmp_path / "model.onnx")
    features, labels, groups = disparate_dataset(120)
    regions = ["north" if i % 3 else "south" for i in range(120)]
    rows = [
        [*map(float, row), group, region, label]
        for row, group, region, label in zip(features, groups, regions, labels, strict=True)
    ]
    data = write_csv(
        tmp_path / "eval.csv", ["f1", "f2", "f3", "f4", "group", "region", "label"], rows
    )
    base = ["model", "evaluate", str(model), "--data", str(data), "--label", "label"]
    code, out, _ = _run(capsys, *base, "--sensitive", "group", "--sensitive", "region")
    assert code == 0
    blocks = json.loads(out)["evaluations"]
    for block, sensitive in zip(blocks, ["group", "region"], strict=True):
        assert (
            _run(capsys, *base, "--sensitive", sensitive)[1]
            == json.dumps(block, indent=2, sort_keys=True) + "\n"
        )


def test_attest_writes_the_facts_file(
    model_dir: Path, eval_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model_dir / "README.md").write_text("---\nlicense: mit\n---\n")
    code, out, _ = _run(
        capsys, "model", "attest", str(model_dir), "--data", str(eval_csv), "--label", "label",
        "--sensitive", "group", "--model-card", str(model_dir / "README.md"),
        "--explainability-report", str(eval_csv),
    )  # fmt: skip
    assert code == 0
    written = model_dir / "edgepolicy-facts.json"
    assert out == f"{written}\n"
    facts = json.loads(written.read_text())
    assert facts["model"]["path"] == "model.onnx"
    assert facts["evaluations"][0]["sensitive"] == "group"
    assert facts["modelCard"]["metadata"] == {"license": "mit"}
    assert facts["explainability"]["report"]["path"] == "../eval.csv"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "x.csv", "--label", "y"], "each --data needs one --label and one --sensitive"),
        (["--model", "absent.onnx"], "absent.onnx: no such model file"),
    ],
)
def test_attest_usage_errors(
    model_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, _, err = _run(capsys, "model", "attest", str(model_dir), *extra)
    assert code == 2
    assert message in err


def test_attest_no_model_and_two_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "model", "attest", str(tmp_path))
    assert (code, err) == (2, f"edgepolicy: error: {tmp_path}: no .onnx file in the directory: "
                              "name the model file with --model\n")  # fmt: skip
    save(classifier(), tmp_path / "a.onnx")
    save(classifier(), tmp_path / "b.onnx")
    code, _, err = _run(capsys, "model", "attest", str(tmp_path))
    assert code == 2
    assert "2 .onnx files (a.onnx, b.onnx): name the model file with --model" in err
    assert not (tmp_path / "edgepolicy-facts.json").exists()


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (["f1", "f2", "f3", "f4", "label"], [1, 2, 3, 4, 1], "sensitive column 'group' not found"),
        (["f1", "f2", "f3", "f4", "group", "label"], [1, "x", 3, 4, "a", 1], "takes 4 features"),
        (["f1", "f2", "f3", "group", "label"], [1, 2, 3, "a", 1], "takes 4 features"),
    ],
)
def test_evaluate_errors_exit_2_in_one_line(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    header: list[str],
    row: list[object],
    message: str,
) -> None:
    data = write_csv(tmp_path / "bad.csv", header, [row, [1, 2, 3, 4, 5, 6][: len(row)]])
    argv = ["model", "evaluate", str(model_dir / "model.onnx"), "--data", str(data)]
    code, out, err = _run(capsys, *argv, "--label", "label", "--sensitive", "group")
    assert code == 2
    assert out == ""
    assert err.startswith("edgepolicy: error: ")
    assert message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_batch_size_must_be_positive(model_dir: Path, eval_csv: Path) -> None:
    argv = ["model", "evaluate", str(model_dir / "model.onnx"), "--data", str(eval_csv)]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--label", "label", "--sensitive", "group", "--batch-size", "0"])
    assert exit_info.value.code == 2


def test_missing_extra_is_a_usage_error(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = __import__("importlib.util").util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec",
        lambda name: None if name == "fairlearn" else real_find_spec(name),
    )
    code, _, err = _run(capsys, "model", "inspect", str(model_dir / "model.onnx"))
    assert code == 2
    assert "needs the fairlearn package: pip install 'edgepolicy[models]'" in err


@pytest.mark.parametrize(
    "statement",
    [
        "from edgepolicy import cli; cli.build_parser()",
        "import contextlib\nfrom edgepolicy import cli\n"
        "with contextlib.suppress(SystemExit):\n    cli.main(['check', '--help'])",
        "from edgepolicy.models.attestation import FACTS_FILE_NAME",
    ],
)
def test_heavy_modules_stay_unloaded(statement: str) -> None:
    probe = (
        f"import sys\n{statement}\n"
        f"print(','.join(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == ""
