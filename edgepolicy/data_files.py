"""Read user data files (``--data``) and merge them into one data document.

Each file holds a YAML or JSON mapping that is merged at the root of OPA's ``data``, as
``opa run`` merges data files. Two files setting the same leaf is an error naming both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepolicy.errors import InputError, UsageError
from edgepolicy.manifests import check_json_value, json_documents, yaml_documents


def load_data_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Return the merge of the data files at ``paths``.

    Raises:
        UsageError: a file does not exist, sets ``data.edgepolicy`` to a non-mapping, or sets
            ``data.edgepolicy.policies`` (policies reach a decision only as the validator's
            output: give policy objects as inputs).
        InputError: a file is unreadable, not valid YAML/JSON, not a mapping, or sets a value
            another file already set (the message names both files and the data path).
    """
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise UsageError(f"{path}: no such data file")
        document = _read(path)
        section = document.get("edgepolicy", {})
        if not isinstance(section, dict):
            raise UsageError(f"{path}: data.edgepolicy must be a mapping")
        if "policies" in section:
            raise UsageError(
                f"{path}: data files must not set data.edgepolicy.policies: give the "
                "policy objects (FinOpsPolicy, ModelPolicy) themselves, so they are validated "
                "against their CRD"
            )
        _merge(merged, document, (), str(path), origins)
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read data file: {error}", path=str(path)) from error
    parse = json_documents if path.suffix.lower() == ".json" else yaml_documents
    documents = [document for document in parse(text, str(path)) if document[0] is not None]
    if len(documents) > 1:
        raise InputError(
            f"a data file must hold one YAML document, found {len(documents)}",
            path=str(path),
            line=documents[1][1],
        )
    if not documents:
        return {}
    value, line, _ = documents[0]
    if not isinstance(value, dict):
        raise InputError(
            f"a data file must hold a mapping (merged at the root of data), got "
            f"{type(value).__name__}",
            path=str(path),
            line=line,
        )
    check_json_value(value, str(path), line)
    return value


def _merge(
    target: dict[str, Any],
    source: Mapping[str, Any],
    where: tuple[str, ...],
    origin: str,
    origins: dict[tuple[str, ...], str],
) -> None:
    for key, value in source.items():
        place = (*where, str(key))
        if key not in target:
            target[key] = value
            origins[place] = origin  # and of everything under it: see _first_origin
        elif isinstance(target[key], dict) and isinstance(value, dict):
            _merge(target[key], value, place, origin, origins)
        else:
            first = _first_origin(origins, place)
            raise InputError(
                f"conflicting values at data.{'.'.join(place)}: already set by {first}",
                path=origin,
            )


def _first_origin(origins: Mapping[tuple[str, ...], str], place: tuple[str, ...]) -> str:
    """The file that set ``place``: the origin of the nearest place at or above it that was
    added whole (a key added later under it by another file is recorded at its own place)."""
    while place and place not in origins:
        place = place[:-1]
    return origins.get(place, "another data file")
