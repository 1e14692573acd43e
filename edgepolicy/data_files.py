"""Read user data files (``--data``) and merge them into one data document.

Each file holds a YAML or JSON mapping that is merged at the root of OPA's ``data``, as
``opa run`` merges data files. Two files setting the same leaf is an error naming both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from edgepolicy.errors import InputError, UsageError
from edgepolicy.manifests import KubernetesLoader, check_json_value


def load_data_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Return the merge of the data files at ``paths``.

    Raises:
        UsageError: a file does not exist.
        InputError: a file is unreadable, not valid YAML/JSON, not a mapping, or sets a value
            another file already set (the message names both files and the data path).
    """
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise UsageError(f"--data {path}: no such file")
        document = _read(path)
        _merge(merged, document, (), str(path), origins)
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read data file: {error}", path=str(path)) from error
    try:
        is_json = path.suffix.lower() == ".json"
        value = json.loads(text) if is_json else yaml.load(text, Loader=KubernetesLoader)
    except json.JSONDecodeError as error:
        raise InputError(f"invalid JSON: {error.msg}", path=str(path), line=error.lineno) from error
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"invalid YAML: {error.problem}", path=str(path), line=line) from error
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {error}", path=str(path)) from error
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(
            f"a data file must hold a mapping (merged at the root of data), got "
            f"{type(value).__name__}",
            path=str(path),
        )
    check_json_value(value, str(path), None)
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
            _record(origins, place, value, origin)
        elif isinstance(target[key], dict) and isinstance(value, dict):
            _merge(target[key], value, place, origin, origins)
        else:
            first = _first_origin(origins, place)
            raise InputError(
                f"conflicting values at data.{'.'.join(place)}: already set by {first}",
                path=origin,
            )


def _record(
    origins: dict[tuple[str, ...], str], place: tuple[str, ...], value: Any, origin: str
) -> None:
    origins[place] = origin
    if isinstance(value, dict):
        for key, item in value.items():
            _record(origins, (*place, str(key)), item, origin)


def _first_origin(origins: Mapping[tuple[str, ...], str], place: tuple[str, ...]) -> str:
    while place and place not in origins:
        place = place[:-1]
    return origins.get(place, "another data file")
