"""Fairness evaluation of an ONNX binary classifier over a labelled CSV, with fairlearn.

The CSV has a header line. The label column holds 0 or 1 (positive class 1); the sensitive
column names each row's group. The features are every other column whose value on the first
data row is a number, in file order; every later value in them must be a number too. They are
fed as a float32 ``[rows, features]`` matrix to the model's first input, in batches: only the
labels, the predictions and the group of each row are kept, never the feature matrix of the
file. The prediction is the argmax over the last axis of the model's first output, or, when that
output has a single column, ``> 0.5``; positive means 1.

Metrics are fairlearn's: ``accuracy``, ``demographicParityDifference``
(``demographic_parity_difference``), ``equalizedOddsDifference`` (``equalized_odds_difference``,
the larger of the true- and false-positive-rate gaps between groups), and the selection rate of
each group (``MetricFrame`` with ``selection_rate``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import onnxruntime
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
)
from sklearn.metrics import accuracy_score

from edgepolicy.errors import ModelInputError, UsageError

DEFAULT_BATCH_ROWS = 4096
POSITIVE_CLASS = 1

Binary = npt.NDArray[np.int8]  # 0/1 labels or predictions


@dataclass(frozen=True)
class Evaluation:
    """The fairness metrics of one model over one CSV, for one sensitive column."""

    label: str
    sensitive: str
    rows: int
    accuracy: float
    demographic_parity_difference: float
    equalized_odds_difference: float
    selection_rates: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        """Return the evaluation as the facts file records it (without the data file)."""
        return {
            "label": self.label,
            "sensitive": self.sensitive,
            "rows": self.rows,
            "metrics": {
                "accuracy": self.accuracy,
                "demographicParityDifference": self.demographic_parity_difference,
                "equalizedOddsDifference": self.equalized_odds_difference,
            },
            "selectionRates": dict(sorted(self.selection_rates.items())),
        }


def evaluate_model(
    model: Path,
    data: Path,
    *,
    label: str,
    sensitive: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Evaluation:
    """Run the ONNX ``model`` over the CSV ``data`` and return fairlearn's metrics for the
    groups of the column ``sensitive``.

    Raises:
        UsageError: ``batch_rows`` is below 1, or ``label`` and ``sensitive`` are one column.
        ModelInputError: the model cannot be loaded or run, or its first input or output does
            not fit (naming the model file); the CSV cannot be read, lacks a column, has a
            non-numeric feature or label (naming the column and the line), a row of the wrong
            width, or no data row; the model's input width differs from the feature count.
    """
    if batch_rows < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_rows}")
    if label == sensitive:
        raise UsageError(f"the label and the sensitive column must differ, both are {label!r}")
    classifier = _Classifier(model)
    truths: list[Binary] = []
    predictions: list[Binary] = []
    codes: list[npt.NDArray[np.int32]] = []
    groups: dict[str, int] = {}
    with _open_csv(data) as stream:
        table = _Table(stream, data, label=label, sensitive=sensitive)
        classifier.check_width(table.feature_columns, table.ignored_columns, data)
        for batch in table.batches(batch_rows):
            truths.append(batch.labels)
            predictions.append(classifier.predict(batch.features))
            codes.append(
                np.fromiter(
                    (groups.setdefault(group, len(groups)) for group in batch.groups),
                    dtype=np.int32,
                    count=len(batch.groups),
                )
            )
    names = list(groups)
    return _metrics(
        np.concatenate(truths),
        np.concatenate(predictions),
        np.concatenate(codes),
        names,
        label=label,
        sensitive=sensitive,
    )


def _metrics(
    y_true: Binary,
    y_pred: Binary,
    codes: npt.NDArray[np.int32],
    names: Sequence[str],
    *,
    label: str,
    sensitive: str,
) -> Evaluation:
    # fairlearn gets each row's group as an integer code (a few bytes a row, whatever the
    # names); the metrics do not depend on how groups are named, and by_group maps back.
    frame = MetricFrame(
        metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=codes
    )
    rates = {names[int(code)]: _number(rate) for code, rate in frame.by_group.items()}
    return Evaluation(
        label=label,
        sensitive=sensitive,
        rows=len(y_true),
        accuracy=_number(accuracy_score(y_true, y_pred)),
        demographic_parity_difference=_number(
            demographic_parity_difference(y_true, y_pred, sensitive_features=codes)
        ),
        equalized_odds_difference=_number(
            equalized_odds_difference(y_true, y_pred, sensitive_features=codes)
        ),
        selection_rates=rates,
    )


def _number(value: Any) -> float:
    number = float(value) + 0.0  # a plain float, and -0.0 printed as 0.0
    if not math.isfinite(number):
        raise ValueError(f"fairlearn returned {number}")  # a bug, not a user error
    return number


class _Classifier:
    """The model in onnxruntime: its first input takes ``[rows, features]`` float32."""

    def __init__(self, path: Path) -> None:
        self._path = path
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings would clutter the JSON's terminal
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's errors share no base class but Exception
            raise ModelInputError(
                f"onnxruntime cannot load the model: {_one_line(error)}", path=str(path)
            ) from error
        first = self._session.get_inputs()[0]
        self._input = str(first.name)
        shape = list(first.shape)
        if first.type != "tensor(float)" or len(shape) != 2:
            raise ModelInputError(
                f"the first input {self._input!r} is {first.type} with shape {shape}; evaluation "
                "feeds a float32 matrix [rows, features] (tensor(float), 2 dimensions)",
                path=str(path),
            )
        self._rows_per_run = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.width = shape[1] if isinstance(shape[1], int) else None
        self._output = str(self._session.get_outputs()[0].name)

    def check_width(self, features: Sequence[str], ignored: Sequence[str], data: Path) -> None:
        """Raise ModelInputError when the model takes another number of features."""
        if self.width is None or self.width == len(features):
            return
        detail = f"numeric feature columns ({', '.join(features) or 'none'})"
        if ignored:
            detail += f"; not numeric on the first data row, so not features: {', '.join(ignored)}"
        raise ModelInputError(
            f"the model's input {self._input!r} takes {self.width} features but {data} has "
            f"{len(features)} {detail}",
            path=str(self._path),
        )

    def predict(self, features: npt.NDArray[np.float32]) -> Binary:
        """Return 1 where the model predicts the positive class, else 0, for each row."""
        rows = features.shape[0]
        step = self._rows_per_run or rows
        parts = []
        for start in range(0, rows, step):
            chunk = features[start : start + step]
            if len(chunk) < step:  # a fixed batch dimension: pad, then drop the padding
                chunk = np.vstack(
                    [chunk, np.zeros((step - len(chunk), chunk.shape[1]), np.float32)]
                )
            parts.append(self._predict_run(chunk)[: rows - start])
        return np.concatenate(parts)

    def _predict_run(self, features: npt.NDArray[np.float32]) -> Binary:
        try:
            output = self._session.run([self._output], {self._input: features})[0]
        except Exception as error:  # onnxruntime's errors share no base class but Exception
            raise ModelInputError(
                f"onnxruntime failed to run the model: {_one_line(error)}", path=str(self._path)
            ) from error
        scores = np.asarray(output)
        rows = features.shape[0]
        if scores.dtype.kind not in "biuf" or scores.ndim == 0 or scores.shape[0] != rows:
            raise ModelInputError(
                f"the first output {self._output!r} gave {scores.dtype} with shape "
                f"{list(scores.shape)} for {rows} rows; expected numbers, one row per input row",
                path=str(self._path),
            )
        if scores.ndim == 1:
            positive = scores > 0.5
        elif scores.shape[-1] == 1:
            positive = scores[..., 0] > 0.5
        else:
            positive = np.argmax(scores, axis=-1) == POSITIVE_CLASS
        if positive.shape != (rows,):
            raise ModelInputError(
                f"the first output {self._output!r} has shape {list(scores.shape)}: expected "
                "[rows] or [rows, classes], one prediction per row",
                path=str(self._path),
            )
        return positive.astype(np.int8)


@dataclass(frozen=True)
class _Batch:
    features: npt.NDArray[np.float32]
    labels: Binary
    groups: list[str]


class _Table:
    """The CSV read row by row: header checks, feature columns, then batches."""

    def __init__(self, stream: TextIO, path: Path, *, label: str, sensitive: str) -> None:
        self._reader = csv.reader(stream)
        self._path = path
        self._width: int | None = None
        header = self._next_row()
        if header is None:
            raise ModelInputError("the file is empty: expected a header line", path=str(path))
        self._width = len(header)
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise ModelInputError(
                    f"column {name!r} appears twice in the header", path=str(path), line=1
                )
            seen.add(name)
        for role, name in (("label", label), ("sensitive", sensitive)):
            if name not in seen:
                raise ModelInputError(
                    f"{role} column {name!r} not found; the header has: {', '.join(header)}",
                    path=str(path),
                    line=self._reader.line_num,
                )
        self._label = header.index(label)
        self._label_name = label
        self._sensitive = header.index(sensitive)
        self._sensitive_name = sensitive
        first = self._next_row()
        if first is None:
            raise ModelInputError("no data rows after the header", path=str(path))
        self._first: list[str] = first
        self._first_line = self._reader.line_num
        others = [i for i in range(self._width) if i not in (self._label, self._sensitive)]
        self._features = [i for i in others if _parse(self._first[i]) is not None]
        self._header = header
        self.feature_columns = [header[i] for i in self._features]
        self.ignored_columns = [
            f"{header[i]} (line {self._first_line}: {self._first[i]!r})"
            for i in others
            if i not in self._features
        ]

    def batches(self, size: int) -> Iterator[_Batch]:
        """Yield the data rows (the first one included) in batches of ``size`` rows.

        Raises:
            ModelInputError: a row of the wrong width, a non-numeric feature or a label other
                than 0/1 (naming the line and the column), an empty group.
        """
        features: list[list[float]] = []
        labels: list[int] = []
        groups: list[str] = []
        lines: list[int] = []
        row: list[str] | None = self._first
        line = self._first_line
        while row is not None:
            features.append(self._features_of(row, line))
            labels.append(self._label_of(row, line))
            groups.append(self._group_of(row, line))
            lines.append(line)
            if len(labels) == size:
                yield self._batch(features, labels, groups, lines)
                features, labels, groups, lines = [], [], [], []
            row = self._next_row()
            line = self._reader.line_num
        if labels:
            yield self._batch(features, labels, groups, lines)

    def _batch(
        self, features: list[list[float]], labels: list[int], groups: list[str], lines: list[int]
    ) -> _Batch:
        with np.errstate(over="ignore"):  # beyond float32's range becomes inf, refused below
            matrix = np.array(features, dtype=np.float32)
        matrix = matrix.reshape(len(labels), len(self._features))
        finite = np.isfinite(matrix)
        if not finite.all():  # nan, inf, or beyond float32's range
            row, column = (int(i) for i in np.argwhere(~finite)[0])
            raise ModelInputError(
                f"feature column {self._header[self._features[column]]!r} holds "
                f"{features[row][column]!r}, not a finite float32 number",
                path=str(self._path),
                line=lines[row],
            )
        return _Batch(matrix, np.array(labels, dtype=np.int8), groups)

    def _next_row(self) -> list[str] | None:
        """The next non-blank row, checked for width; None at the end of the file."""
        try:
            for row in self._reader:
                if not row:
                    continue
                if self._width is not None and len(row) != self._width:
                    raise ModelInputError(
                        f"{len(row)} fields, but the header has {self._width}",
                        path=str(self._path),
                        line=self._reader.line_num,
                    )
                return list(row)
        except csv.Error as error:
            raise ModelInputError(
                f"invalid CSV: {error}", path=str(self._path), line=self._reader.line_num
            ) from error
        except UnicodeDecodeError as error:
            raise ModelInputError(
                f"not UTF-8 text after line {self._reader.line_num}: {error.reason}",
                path=str(self._path),
            ) from error
        return None

    def _features_of(self, row: list[str], line: int) -> list[float]:
        try:
            return [float(row[index]) for index in self._features]
        except ValueError:
            index = next(index for index in self._features if _parse(row[index]) is None)
            raise ModelInputError(
                f"feature column {self._header[index]!r} holds {row[index]!r}, not a number",
                path=str(self._path),
                line=line,
            ) from None

    def _label_of(self, row: list[str], line: int) -> int:
        number = _parse(row[self._label])
        if number not in (0.0, 1.0):
            raise ModelInputError(
                f"label column {self._label_name!r} holds {row[self._label]!r}; expected 0 or 1 "
                f"(positive class {POSITIVE_CLASS})",
                path=str(self._path),
                line=line,
            )
        return int(number) if number is not None else 0

    def _group_of(self, row: list[str], line: int) -> str:
        group = row[self._sensitive]
        if not group:
            raise ModelInputError(
                f"sensitive column {self._sensitive_name!r} is empty",
                path=str(self._path),
                line=line,
            )
        return group


def _parse(text: str) -> float | None:
    """The finite number ``text`` spells, else None (empty, words, nan, inf)."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _open_csv(path: Path) -> TextIO:
    try:
        # utf-8-sig: spreadsheets often start CSV exports with a byte-order mark.
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise ModelInputError(f"cannot read: {error.strerror or error}", path=str(path)) from error


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
