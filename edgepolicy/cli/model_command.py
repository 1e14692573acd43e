"""The `edgepolicy model` command group: facts about ONNX models (inspect, evaluate, attest).

Exit codes: 0 done; 2 bad usage or unusable input (raised as EdgepolicyError, turned into a
message by the CLI). onnx, onnxruntime and fairlearn (the ``models`` extra) are imported only
when a subcommand runs, so building the parser, `check` and `serve` never load them.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from edgepolicy.errors import UsageError

EXTRA_MODULES = ("onnx", "onnxruntime", "fairlearn")


_MODEL_EXAMPLES = """\
Examples:
  edgepolicy model inspect models/llm/model.onnx
  edgepolicy model evaluate model.onnx --data eval.csv --label approved --sensitive gender
  edgepolicy model attest models/llm --data eval.csv --label approved --sensitive gender
  edgepolicy model sign models/llm --key signing.pem --signature llm.sig
  edgepolicy model verify models/llm --signature llm.sig --public-key signing.pub.pem
"""

_INSPECT_EXAMPLES = """\
Examples:
  edgepolicy model inspect models/llm/model.onnx
  edgepolicy model inspect model.onnx > model-facts.json
"""

_EVALUATE_EXAMPLES = """\
Examples:
  edgepolicy model evaluate model.onnx --data eval.csv --label approved --sensitive gender
  edgepolicy model evaluate model.onnx --data eval.csv --label y --sensitive sex \\
      --sensitive age_band
"""

_ATTEST_EXAMPLES = """\
Examples:
  edgepolicy model attest models/llm
  edgepolicy model attest models/llm --data eval.csv --label approved --sensitive gender \\
      --explainability-report shap.json --model-card models/llm/README.md
"""


def add_parser(subparsers: Any) -> None:
    """Register `model` and its subcommands."""
    from edgepolicy.cli import model_signing_command

    parser = subparsers.add_parser(
        "model",
        epilog=_MODEL_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="facts about ONNX models: inspect, evaluate fairness, attest a model directory",
        description=(
            "Produce the facts a ModelPolicy checks: what an ONNX model is (inspect), how fair "
            "its predictions are on labelled data (evaluate), and the facts file of a model "
            "directory (attest), signed with the model. Needs the models extra: "
            "pip install 'edgepolicy[models]'."
        ),
    )
    model_subparsers = parser.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    model_subparsers.required = True
    _add_inspect(model_subparsers)
    _add_evaluate(model_subparsers)
    _add_attest(model_subparsers)
    model_signing_command.add_subcommands(model_subparsers)


def _add_inspect(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        epilog=_INSPECT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="print an ONNX model's facts as JSON",
        description=(
            "Print the facts of an ONNX model as JSON: sha256, size, opset, inputs and outputs "
            "(type, shape), quantization (int4, int8, fp16 or none) and the external data files "
            "it names. External weight files are never read."
        ),
    )
    parser.add_argument("model", metavar="MODEL.onnx", type=Path, help="the ONNX model")
    parser.set_defaults(func=run_inspect)


def _add_evaluate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        epilog=_EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="print a model's accuracy and fairness metrics over a labelled CSV as JSON",
        description=(
            "Run the model with onnxruntime over a labelled CSV and print fairlearn's accuracy, "
            "demographic parity difference, equalized odds difference and per-group selection "
            "rates for the sensitive column. Features: every other column that is numeric on "
            "the first data row, in file order. Labels: 0 or 1 (positive class 1)."
        ),
    )
    parser.add_argument("model", metavar="MODEL.onnx", type=Path, help="the ONNX model")
    parser.add_argument("--data", required=True, metavar="EVAL.csv", type=Path, help="the CSV")
    parser.add_argument("--label", required=True, metavar="COL", help="the label column (0/1)")
    parser.add_argument(
        "--sensitive",
        required=True,
        action="append",
        metavar="COL",
        help="the sensitive column; repeat for one metrics block each (each evaluated as if "
        "given alone)",
    )
    _add_batch_size(parser)
    parser.set_defaults(func=run_evaluate)


def _add_attest(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attest",
        epilog=_ATTEST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="write DIR/edgepolicy-facts.json: model facts, evaluations, report and card digests",
        description=(
            "Write DIR/edgepolicy-facts.json for the model in DIR (the only .onnx file, or "
            "--model): its inspect facts, one evaluation per --data/--label/--sensitive triple, "
            "the sha256 of the explainability report and of the model card, and the card's YAML "
            "front matter. Paths are relative to DIR; the output is byte-for-byte reproducible."
        ),
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="the model directory")
    parser.add_argument(
        "--model", metavar="FILE", type=Path, help="the model in DIR (default: its only .onnx)"
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="CSV",
        type=Path,
        help="labelled evaluation CSV (repeatable, with one --label and --sensitive each)",
    )
    parser.add_argument("--label", action="append", default=[], metavar="COL")
    parser.add_argument("--sensitive", action="append", default=[], metavar="COL")
    parser.add_argument(
        "--explainability-report",
        metavar="FILE",
        type=Path,
        help="explainability report (SHAP/LIME output) whose sha256 to record",
    )
    parser.add_argument(
        "--model-card",
        metavar="FILE",
        type=Path,
        help="model card (README.md with YAML front matter) whose sha256 and metadata to record",
    )
    _add_batch_size(parser)
    parser.set_defaults(func=run_attest)


def _add_batch_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="ROWS",
        help="CSV rows per onnxruntime run (default: 4096)",
    )


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of rows, at least 1, got {text!r}"
        )
    return number


def run_inspect(args: argparse.Namespace) -> int:
    """Print the model's facts.

    Raises:
        EdgepolicyError: the models extra is missing, or the model cannot be read.
    """
    _require_extra()
    from edgepolicy.models.facts import inspect_model

    _print_json(inspect_model(args.model))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Print the evaluation: one block, or ``{"evaluations": [...]}`` for several --sensitive.

    Raises:
        EdgepolicyError: the models extra is missing, or the model or CSV is unusable.
    """
    _require_extra()
    from edgepolicy.models.digests import file_digest
    from edgepolicy.models.evaluation import DEFAULT_BATCH_ROWS, evaluate_model

    sha256, _ = file_digest(args.data)
    blocks = []
    for sensitive in args.sensitive:
        evaluation = evaluate_model(
            args.model,
            args.data,
            label=args.label,
            sensitive=sensitive,
            batch_rows=DEFAULT_BATCH_ROWS if args.batch_size is None else args.batch_size,
        ).to_json()
        evaluation["data"] = {"path": str(args.data), "sha256": sha256}
        blocks.append(evaluation)
    _print_json(blocks[0] if len(blocks) == 1 else {"evaluations": blocks})
    return 0


def run_attest(args: argparse.Namespace) -> int:
    """Write the facts file and print its path.

    Raises:
        EdgepolicyError: bad usage (unpaired --data/--label/--sensitive, no or several
            models), the models extra is missing, or an input is unusable.
    """
    if not len(args.data) == len(args.label) == len(args.sensitive):
        raise UsageError(
            "each --data needs one --label and one --sensitive: got "
            f"{len(args.data)} --data, {len(args.label)} --label, "
            f"{len(args.sensitive)} --sensitive"
        )
    _require_extra()
    from edgepolicy.models.attestation import (
        EvaluationRequest,
        ModelChoiceError,
        attest,
        write_facts,
    )

    requests = [
        EvaluationRequest(data=data, label=label, sensitive=sensitive)
        for data, label, sensitive in zip(args.data, args.label, args.sensitive, strict=True)
    ]
    try:
        facts = attest(
            args.directory,
            model=args.model,
            evaluations=requests,
            explainability_report=args.explainability_report,
            model_card=args.model_card,
            batch_rows=args.batch_size,
        )
    except ModelChoiceError as error:
        raise UsageError(f"{error}: name the model file with --model") from error
    print(write_facts(args.directory, facts))
    return 0


def _require_extra() -> None:
    """Raise UsageError naming the extra when onnx, onnxruntime or fairlearn is missing."""
    for name in EXTRA_MODULES:
        if importlib.util.find_spec(name) is None:
            raise UsageError(
                f"`edgepolicy model` needs the {name} package: pip install 'edgepolicy[models]'"
            )


def _print_json(document: Any) -> None:
    from edgepolicy.models.attestation import encode_facts

    sys.stdout.write(encode_facts(document).decode("utf-8"))
