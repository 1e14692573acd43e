"""The facts file of a model directory, ``edgepolicy-facts.json``: what `model attest` writes and
`model sign` signs with the model.

It holds the model's inspection facts, its fairness evaluations, and the digests of its
explainability report and model card with the card's front matter (docs/models.md has the
shape). Paths are relative to the directory, written with ``/``. The JSON has sorted keys and
floats in their shortest round-trip form, so the same inputs give the same bytes, and so the same
signature digest.

This module imports onnx, onnxruntime and fairlearn only inside :func:`attest`: the admission
path may import it for :data:`FACTS_FILE_NAME` without loading them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepolicy.errors import ModelInputError, UsageError
from edgepolicy.manifests import check_json_value, yaml_documents
from edgepolicy.models.digests import file_digest

FACTS_FILE_NAME = "edgepolicy-facts.json"
MODEL_SUFFIX = ".onnx"
FRONT_MATTER_FENCE = "---"


class ModelChoiceError(UsageError):
    """A model directory holds no ``.onnx`` file, or several: the caller must name one."""


@dataclass(frozen=True)
class EvaluationRequest:
    """One fairness evaluation to record: a labelled CSV and its sensitive column."""

    data: Path
    label: str
    sensitive: str


def attest(
    directory: Path,
    *,
    model: Path | None = None,
    evaluations: Sequence[EvaluationRequest] = (),
    explainability_report: Path | None = None,
    model_card: Path | None = None,
    batch_rows: int | None = None,
) -> dict[str, Any]:
    """Return the facts of the model in ``directory`` (``model``, else the directory's only
    ``.onnx`` file), with the given evaluations, report and model card.

    Raises:
        UsageError: ``directory`` is not a directory; no ``.onnx`` file or several; the model
            is outside ``directory``.
        ModelInputError: the model, a CSV, the report or the card cannot be read or used, or an
            external data file the model names is missing (naming the file).
    """
    from edgepolicy.models.evaluation import DEFAULT_BATCH_ROWS, evaluate_model
    from edgepolicy.models.facts import inspect_model

    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    model_path = _inside(directory, model) if model is not None else find_model(directory)
    model_facts = inspect_model(model_path)
    model_facts["path"] = _relative(model_path, directory)
    model_facts["externalData"] = [
        _external_file(directory, model_path, location) for location in model_facts["externalData"]
    ]
    facts: dict[str, Any] = {"model": model_facts, "evaluations": []}
    for request in evaluations:
        evaluation = evaluate_model(
            model_path,
            request.data,
            label=request.label,
            sensitive=request.sensitive,
            batch_rows=DEFAULT_BATCH_ROWS if batch_rows is None else batch_rows,
        ).to_json()
        evaluation["data"] = _file_reference(request.data, directory)
        facts["evaluations"].append(evaluation)
    if explainability_report is not None:
        facts["explainability"] = {"report": _file_reference(explainability_report, directory)}
    if model_card is not None:
        card = _file_reference(model_card, directory)
        card["metadata"] = model_card_metadata(model_card)
        facts["modelCard"] = card
    return facts


def encode_facts(facts: dict[str, Any]) -> bytes:
    """Return ``facts`` as the facts file's bytes: indented JSON, sorted keys, UTF-8, final
    newline. The same facts always give the same bytes.

    Raises:
        ValueError: a float is NaN or infinite (the evaluation never produces one).
    """
    text = json.dumps(facts, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_facts(directory: Path, facts: dict[str, Any]) -> Path:
    """Write ``facts`` to ``directory/edgepolicy-facts.json`` (replacing it whole, never
    leaving a half-written file) and return its path.

    Raises:
        ModelInputError: the file cannot be written.
    """
    target = directory / FACTS_FILE_NAME
    partial = directory / f".{FACTS_FILE_NAME}.partial"
    try:
        partial.write_bytes(encode_facts(facts))
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ModelInputError(
            f"cannot write: {error.strerror or error}", path=str(target)
        ) from error
    return target


def find_model(directory: Path) -> Path:
    """Return the only ``.onnx`` file under ``directory`` (searched recursively, hidden
    folders and symbolic links to folders skipped).

    Raises:
        ModelChoiceError: there is none, or there are several (listing them).
    """
    found: list[Path] = []
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if name.endswith(MODEL_SUFFIX))
    if not found:
        raise ModelChoiceError(f"{directory}: no {MODEL_SUFFIX} file in the directory")
    if len(found) > 1:
        names = ", ".join(_relative(path, directory) for path in found)
        raise ModelChoiceError(f"{directory}: {len(found)} {MODEL_SUFFIX} files ({names})")
    return found[0]


def model_card_metadata(path: Path) -> dict[str, Any]:
    """Return the YAML front matter of the model card at ``path`` (the Hugging Face
    convention: the file starts with a ``---`` line, the YAML ends at the next ``---`` line);
    ``{}`` when the card has none. Timestamps stay strings.

    Raises:
        ModelInputError: the card cannot be read, its front matter is not closed, is not valid
            YAML, is not a mapping, or holds values JSON cannot carry (naming the line).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ModelInputError(f"cannot read: {error.strerror or error}", path=str(path)) from error
    except UnicodeDecodeError as error:
        raise ModelInputError(f"not UTF-8 text: {error.reason}", path=str(path)) from error
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != FRONT_MATTER_FENCE:
        return {}
    end = next(
        (index for index in range(1, len(lines)) if lines[index].rstrip() == FRONT_MATTER_FENCE),
        None,
    )
    if end is None:
        raise ModelInputError(
            f"the front matter opened on line 1 is not closed by a {FRONT_MATTER_FENCE!r} line",
            path=str(path),
            line=1,
        )
    # A leading newline for the opening fence: YAML lines are then the file's line numbers.
    documents = yaml_documents("\n" + "".join(lines[1:end]), str(path))
    if not documents or documents[0][0] is None:
        return {}
    if len(documents) > 1:
        raise ModelInputError(
            "the front matter holds several YAML documents", path=str(path), line=documents[1][1]
        )
    value, line, _ = documents[0]
    if not isinstance(value, dict):
        raise ModelInputError(
            f"the front matter must be a YAML mapping, got {type(value).__name__}",
            path=str(path),
            line=line,
        )
    check_json_value(value, str(path), line)
    return value


def _inside(directory: Path, model: Path) -> Path:
    """``model`` as given, or relative to ``directory``; refused when outside it."""
    if not model.is_absolute() and not model.exists() and (directory / model).exists():
        model = directory / model
    if not model.is_file():
        raise UsageError(f"{model}: no such model file")
    if not model.resolve().is_relative_to(directory.resolve()):
        raise UsageError(
            f"{model}: the model must be inside {directory}, the directory the signature covers"
        )
    return model


def _external_file(directory: Path, model: Path, location: str) -> str:
    """The external data file ``location`` (relative to the model's folder) relative to
    ``directory``; it must exist, as the signature of the directory must cover it."""
    path = model.parent / location
    if not path.is_file():
        raise ModelInputError(
            f"the model keeps tensors in {location!r}, which is missing beside it", path=str(model)
        )
    return _relative(path, directory)


def _file_reference(path: Path, directory: Path) -> dict[str, Any]:
    sha256, _ = file_digest(path)
    return {"path": _relative(path, directory), "sha256": sha256}


def _relative(path: Path, directory: Path) -> str:
    """``path`` relative to ``directory``, with ``/``; ``../`` for files kept outside it (such
    as evaluation data, which the signature does not cover)."""
    relative = os.path.relpath(path.resolve(), directory.resolve())
    return Path(relative).as_posix()
