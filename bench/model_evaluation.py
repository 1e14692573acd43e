"""Benchmark `edgepolicy model evaluate`: throughput and peak memory of the streamed evaluation
against a whole-file baseline (pandas reads the CSV, one onnxruntime run, the same fairlearn
calls), on the same files in the same process.

Not a test: it prints numbers (docs/models.md quotes them).

    .venv/bin/python bench/model_evaluation.py [--rows 10000,100000] [--features 16]

Peak memory is what tracemalloc sees (Python objects and numpy arrays; onnxruntime's own arena
is not counted, and is the same for both): `peak MiB` over the whole run, `read MiB` up to the
moment fairlearn starts (reading the CSV and running the model), the part streaming bounds;
fairlearn then needs memory in proportion to the rows either way.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pandas
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from onnx import TensorProto, helper, numpy_helper

from edgepolicy.models import evaluation
from edgepolicy.models.evaluation import evaluate_model

_read_peaks: list[float] = []


def _note_read_peak() -> None:
    if tracemalloc.is_tracing():
        _read_peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)


def _noting_metrics(*args: Any, **kwargs: Any) -> Any:
    """evaluation._metrics, noting the peak first: where the streamed run hands its
    accumulated labels and predictions to fairlearn (a private hook, for this script only)."""
    _note_read_peak()
    return _metrics(*args, **kwargs)


_metrics = evaluation._metrics
evaluation._metrics = _noting_metrics


def _model(path: Path, features: int) -> Path:
    weights = np.zeros((features, 2), np.float32)
    weights[0, 1] = 1.0
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1),
        ],
        "bench",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _data(path: Path, rows: int, features: int) -> Path:
    rng = np.random.default_rng(3)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([*(f"f{i}" for i in range(features)), "group", "label"])
        for start in range(0, rows, 10_000):
            count = min(10_000, rows - start)
            values = rng.normal(size=(count, features)).round(6)
            groups = rng.choice(["a", "b", "c"], size=count)
            labels = rng.integers(0, 2, size=count)
            for row, group, label in zip(values, groups, labels, strict=True):
                writer.writerow([*row.tolist(), group, int(label)])
    return path


def _whole_file(model: Path, data: Path) -> tuple[float, float]:
    """The baseline: the whole CSV and the whole feature matrix in memory at once."""
    frame = pandas.read_csv(data)
    features = frame.drop(columns=["group", "label"]).to_numpy(np.float32)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    scores = session.run(None, {"x": features})[0]
    predictions = (np.argmax(scores, axis=-1) == 1).astype(int)
    _note_read_peak()
    labels, groups = frame["label"].to_numpy(), frame["group"].to_numpy()
    return (
        demographic_parity_difference(labels, predictions, sensitive_features=groups),
        equalized_odds_difference(labels, predictions, sensitive_features=groups),
    )


def _streamed(model: Path, data: Path) -> tuple[float, float]:
    result = evaluate_model(model, data, label="label", sensitive="group")
    return result.demographic_parity_difference, result.equalized_odds_difference


def _measure(run: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """Seconds of one untraced run, then peak MiB of a second run under tracemalloc (which
    slows what it traces, so the two are measured apart)."""
    start = time.perf_counter()
    value = run()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, _read_peaks.pop(), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000", help="comma-separated row counts")
    parser.add_argument("--features", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = _model(Path(folder) / "model.onnx", args.features)
        print(
            f"{'rows':>8} {'how':>10} {'seconds':>8} {'rows/s':>9} {'peak MiB':>9} {'read MiB':>9}"
        )
        for rows in (int(text) for text in args.rows.split(",")):
            data = _data(Path(folder) / f"eval-{rows}.csv", rows, args.features)
            whole = _measure(lambda: _whole_file(model, data))  # noqa: B023
            streamed = _measure(lambda: _streamed(model, data))  # noqa: B023
            if not np.allclose(streamed[3], whole[3], rtol=0, atol=1e-12):
                raise SystemExit(f"streamed {streamed[3]} != whole-file {whole[3]}")
            for how, (seconds, peak, read, _) in (("whole-file", whole), ("streamed", streamed)):
                speed = rows / seconds
                print(
                    f"{rows:>8} {how:>10} {seconds:>8.2f} {speed:>9.0f} {peak:>9.1f} {read:>9.1f}"
                )
            ratios = [streamed[i] / whole[i] for i in range(3)]
            print(
                f"{rows:>8} {'ratio':>10} {ratios[0]:>8.2f} {'':>9} {ratios[1]:>9.2f} "
                f"{ratios[2]:>9.2f}  (streamed / whole-file)"
            )


if __name__ == "__main__":
    main()
