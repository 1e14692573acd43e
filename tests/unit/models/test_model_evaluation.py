"""`evaluate_model`: real onnxruntime inference over a CSV, metrics equal to fairlearn's."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
)
from onnx_models import (
    classifier,
    disparate_dataset,
    int8_twin,
    save,
    single_score,
    write_csv,
    write_dataset,
)

from edgepolicy.errors import ModelInputError, UsageError
from edgepolicy.models.evaluation import evaluate_model

HEADER = ["f1", "f2", "group", "f3", "f4", "label"]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save(classifier(), tmp_path / "model.onnx")


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    features, labels, groups = disparate_dataset(600)
    return write_dataset(tmp_path / "eval.csv", features, labels, groups), features, labels, groups


def test_metrics_equal_fairlearn_on_the_same_arrays(
    model: Path, dataset: tuple[Path, np.ndarray, np.ndarray, np.ndarray]
) -> None:
    data, features, labels, groups = dataset
    predictions = (features[:, 0] > 0).astype(int)  # what the classifier decides
    result = evaluate_model(model, data, label="label", sensitive="group")
    assert result.rows == 600
    assert result.accuracy == float(np.mean(predictions == labels))
    assert result.demographic_parity_difference == demographic_parity_difference(
        labels, predictions, sensitive_features=groups
    )
    assert result.equalized_odds_difference == equalized_odds_difference(
        labels, predictions, sensitive_features=groups
    )
    frame = MetricFrame(
        metrics=selection_rate, y_true=labels, y_pred=predictions, sensitive_features=groups
    )
    assert dict(result.selection_rates) == frame.by_group.to_dict()
    # The known disparity: group a's first feature is shifted up, so a is selected far more.
    assert result.selection_rates["a"] - result.selection_rates["b"] > 0.4


def test_hand_computed_case(model: Path, tmp_path: Path) -> None:
    # x0 = 1 predicts positive, -1 negative.
    #   group a: labels 1 1 0 0, predictions 1 1 1 0 -> selection 3/4, TPR 2/2, FPR 1/2
    #   group b: labels 1 1 1 0, predictions 1 0 0 0 -> selection 1/4, TPR 1/3, FPR 0/1
    # accuracy 5/8; demographic parity 3/4 - 1/4 = 1/2; equalized odds max(2/3, 1/2) = 2/3
    cases = [("a", 1, 1), ("a", 1, 1), ("a", 0, 1), ("a", 0, 0)]
    cases += [("b", 1, 1), ("b", 1, 0), ("b", 1, 0), ("b", 0, 0)]
    rows = [[1 if predicted else -1, 0, group, 0, 0, label] for group, label, predicted in cases]
    data = write_csv(tmp_path / "tiny.csv", HEADER, rows)
    result = evaluate_model(model, data, label="label", sensitive="group")
    assert _fraction(result.accuracy) == Fraction(5, 8)
    assert _fraction(result.demographic_parity_difference) == Fraction(1, 2)
    assert _fraction(result.equalized_odds_difference) == Fraction(2, 3)
    assert {k: _fraction(v) for k, v in result.selection_rates.items()} == {
        "a": Fraction(3, 4),
        "b": Fraction(1, 4),
    }
    assert result.to_json() == {
        "label": "label",
        "sensitive": "group",
        "rows": 8,
        "metrics": {
            "accuracy": result.accuracy,
            "demographicParityDifference": result.demographic_parity_difference,
            "equalizedOddsDifference": result.equalized_odds_difference,
        },
        "selectionRates": {"a": 0.75, "b": 0.25},
    }


def test_single_column_output_is_thresholded_at_half(tmp_path: Path) -> None:
    model = save(single_score(), tmp_path / "score.onnx")
    rows = [[0.6, 0, "a", 0, 0, 1], [0.5, 0, "a", 0, 0, 0], [0.4, 0, "b", 0, 0, 1]]
    data = write_csv(tmp_path / "scores.csv", HEADER, rows)
    result = evaluate_model(model, data, label="label", sensitive="group")
    assert dict(result.selection_rates) == {"a": 0.5, "b": 0.0}
    assert _fraction(result.accuracy) == Fraction(2, 3)


@pytest.mark.parametrize("batch_rows", [1, 7, 64, 599, 600, 100_000])
def test_batches_give_identical_results(
    model: Path, dataset: tuple[Path, np.ndarray, np.ndarray, np.ndarray], batch_rows: int
) -> None:
    data = dataset[0]
    whole = evaluate_model(model, data, label="label", sensitive="group", batch_rows=600)
    assert (
        evaluate_model(model, data, label="label", sensitive="group", batch_rows=batch_rows)
        == whole
    )


def test_onnxruntime_never_sees_more_than_a_batch(
    model: Path,
    dataset: tuple[Path, np.ndarray, np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    real_run = onnxruntime.InferenceSession.run

    def run(self: Any, outputs: Any, feeds: dict[str, np.ndarray], *rest: Any) -> Any:
        seen.append(len(next(iter(feeds.values()))))
        return real_run(self, outputs, feeds, *rest)

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", run)
    evaluate_model(model, dataset[0], label="label", sensitive="group", batch_rows=50)
    assert seen == [50] * 12


def test_fixed_batch_dimension_is_fed_row_by_row(
    model: Path, dataset: tuple[Path, np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    fixed = save(classifier(batch=1), tmp_path / "fixed.onnx")
    data = dataset[0]
    assert evaluate_model(fixed, data, label="label", sensitive="group") == evaluate_model(
        model, data, label="label", sensitive="group"
    )


def test_int8_twin_runs(
    model: Path, dataset: tuple[Path, np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    twin = int8_twin(model, tmp_path / "int8.onnx")
    result = evaluate_model(twin, dataset[0], label="label", sensitive="group")
    assert result.rows == 600
    assert result.accuracy > 0.6


def test_non_numeric_columns_are_not_features(model: Path, tmp_path: Path) -> None:
    rows = [[1, "alice", 0, "a", 0, 0, 1], [-1, "bob", 0, "b", 0, 0, 0]]
    data = write_csv(
        tmp_path / "named.csv", ["f1", "name", "f2", "group", "f3", "f4", "label"], rows
    )
    result = evaluate_model(model, data, label="label", sensitive="group")
    assert result.accuracy == 1.0


def _fraction(value: float) -> Fraction:
    return Fraction(value).limit_denominator(1000)


# Errors: each names the file, and the column and line where there is one.


def _evaluate(model: Path, data: Path, **overrides: str) -> None:
    arguments = {"label": "label", "sensitive": "group", **overrides}
    evaluate_model(model, data, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"label": "outcome"}, r"eval\.csv:1: label column 'outcome' not found; the header has"),
        ({"sensitive": "sex"}, r"eval\.csv:1: sensitive column 'sex' not found"),
    ],
)
def test_missing_column(
    model: Path, tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    data = write_csv(tmp_path / "eval.csv", HEADER, [[1, 0, "a", 0, 0, 1]])
    with pytest.raises(ModelInputError, match=message):
        _evaluate(model, data, **overrides)


def test_non_numeric_feature_names_column_and_line(model: Path, tmp_path: Path) -> None:
    rows = [[1, 0, "a", 0, 0, 1], [1, 0, "b", 0, 0, 1], [1, "n/a", "b", 0, 0, 1]]
    data = write_csv(tmp_path / "eval.csv", HEADER, rows)
    with pytest.raises(ModelInputError, match=r"eval\.csv:4: feature column 'f2' holds 'n/a'"):
        _evaluate(model, data)


def test_non_numeric_on_the_first_row_names_column_and_line(model: Path, tmp_path: Path) -> None:
    rows = [[1, "n/a", "a", 0, 0, 1], [1, 0, "b", 0, 0, 1]]
    data = write_csv(tmp_path / "eval.csv", HEADER, rows)
    with pytest.raises(
        ModelInputError, match=r"takes 4 features but .*eval\.csv has 3 .*f2 \(line 2: 'n/a'\)"
    ):
        _evaluate(model, data)


def test_width_mismatch(model: Path, tmp_path: Path) -> None:
    data = write_csv(
        tmp_path / "eval.csv", ["f1", "f2", "f3", "group", "label"], [[1, 0, 0, "a", 1]]
    )
    with pytest.raises(
        ModelInputError,
        match=r"model\.onnx: the model's input 'x' takes 4 features but .*eval\.csv has 3 numeric "
        r"feature columns \(f1, f2, f3\)",
    ):
        _evaluate(model, data)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1, 0, "a", 0, 0, 2]], r"eval\.csv:2: label column 'label' holds '2'; expected 0 or 1"),
        ([[1, 0, "a", 0, 0, 1], [1, 0, "a", 0, 0, "yes"]], r"eval\.csv:3: label column"),
        ([[1, 0, "", 0, 0, 1]], r"eval\.csv:2: sensitive column 'group' is empty"),
        ([[1, 0, "a", 0, 0, 1], [1, 0, "a", 0]], r"eval\.csv:3: 4 fields, but the header has 6"),
        (
            [[1, 0, "a", 0, 0, 1], [1, "inf", "a", 0, 0, 1]],
            r"eval\.csv:3: feature column 'f2' holds inf, not a finite float32 number",
        ),
        (
            [[1, 0, "a", 0, 0, 1], [1, 0, "a", 0, 0, 1], [1, 0, "b", "1e300", 0, 1]],
            r"eval\.csv:4: feature column 'f3' holds 1e\+300, not a finite float32 number",
        ),
        ([], r"eval\.csv: no data rows after the header"),
    ],
)
def test_bad_rows(model: Path, tmp_path: Path, rows: list[list[object]], message: str) -> None:
    data = write_csv(tmp_path / "eval.csv", HEADER, rows)
    with pytest.raises(ModelInputError, match=message):
        _evaluate(model, data)


def test_empty_file(model: Path, tmp_path: Path) -> None:
    data = tmp_path / "eval.csv"
    data.write_text("")
    with pytest.raises(ModelInputError, match=r"eval\.csv: the file is empty"):
        _evaluate(model, data)


def test_duplicate_header(model: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "eval.csv", ["f1", "f1", "group", "label"], [[1, 0, "a", 1]])
    with pytest.raises(ModelInputError, match=r"eval\.csv:1: column 'f1' appears twice"):
        _evaluate(model, data)


def test_label_and_sensitive_must_differ(model: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "eval.csv", HEADER, [[1, 0, "a", 0, 0, 1]])
    with pytest.raises(UsageError, match="must differ"):
        _evaluate(model, data, sensitive="label")


def test_model_that_onnxruntime_cannot_load(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"garbage")
    data = write_csv(tmp_path / "eval.csv", HEADER, [[1, 0, "a", 0, 0, 1]])
    with pytest.raises(ModelInputError, match=r"model\.onnx: onnxruntime cannot load the model"):
        _evaluate(model, data)
