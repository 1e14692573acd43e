"""The schemas of the policy kinds, read from the CustomResourceDefinitions edgepolicy ships.

The CRDs under ``deploy/base/crds`` (shipped as the package data ``edgepolicy/crds``) are the one
definition of a valid policy: the API server enforces them, and
:mod:`edgepolicy.validated_policies` checks every policy against them once, when it enters. A
CRD of the group ``policy.apexlogic.com`` makes its kind known here; nothing else has to change
for a new policy kind to be validated.

Each ``openAPIV3Schema`` (a Kubernetes *structural* schema) is converted to JSON Schema (draft
2020-12) the way the API server reads it: ``nullable`` lets a field be null; the draft-4 boolean
``exclusiveMinimum``/``exclusiveMaximum`` become numbers; an object with ``properties`` refuses
other fields (the API server would prune them silently, so a typo would disable a limit) unless
``x-kubernetes-preserve-unknown-fields`` says otherwise; a ``x-kubernetes-list-type: set`` list
refuses a repeated item; every object needs ``metadata.name``.
The Kubernetes extensions (``x-kubernetes-validations``, ``x-kubernetes-map-type``) stay in the
structural schema, which the validator walks beside the object.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from edgepolicy.errors import InputError
from edgepolicy.manifests import POLICY_GROUP

_CRD_DIR = Path(__file__).resolve().parent / "crds"


@dataclass(frozen=True)
class KindSchema:
    """One policy kind's schema: the CRD's structural schema and its JSON Schema conversion."""

    kind: str
    api_version: str
    structural: Mapping[str, Any]
    json_schema: Mapping[str, Any]


@cache
def kind_schemas() -> Mapping[str, KindSchema]:
    """Return the schema of every policy kind, by kind, from the shipped CRDs (read once).

    Raises:
        InputError: a shipped CRD cannot be read or has no ``openAPIV3Schema`` for its
            served version (the message names the file).
    """
    return load_kind_schemas(_CRD_DIR)


def load_kind_schemas(directory: Path) -> dict[str, KindSchema]:
    """Return the schemas of the ``policy.apexlogic.com`` CRDs in ``directory``'s YAML files.

    Raises:
        InputError: a file cannot be read, or a CRD of the group lacks a schema.
    """
    schemas: dict[str, KindSchema] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as error:
            raise InputError(f"cannot read the CRD: {error}", path=str(path)) from error
        for crd in documents:
            if not isinstance(crd, Mapping) or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd.get("spec") or {}
            if spec.get("group") != POLICY_GROUP:
                continue
            kind = str((spec.get("names") or {}).get("kind", ""))
            for version in spec.get("versions") or []:
                if not version.get("served"):
                    continue
                structural = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
                if not isinstance(structural, Mapping):
                    raise InputError(
                        f"CRD {kind} {version.get('name')}: no schema.openAPIV3Schema",
                        path=str(path),
                    )
                structural = _any_status(structural)
                schemas[kind] = KindSchema(
                    kind=kind,
                    api_version=f"{POLICY_GROUP}/{version.get('name')}",
                    structural=structural,
                    json_schema=to_json_schema(structural, top=True),
                )
    return schemas


def _any_status(structural: Mapping[str, Any]) -> Mapping[str, Any]:
    """``structural`` with any ``status`` accepted: status belongs to the controller (written
    through the status subresource, ignored by the API server on writes of the object), so a
    policy committed with an old or foreign status is still a valid policy."""
    properties = structural.get("properties") or {}
    if "status" not in properties:
        return structural
    status = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {**structural, "properties": {**properties, "status": status}}


def to_json_schema(structural: Mapping[str, Any], *, top: bool = False) -> dict[str, Any]:
    """Return JSON Schema (draft 2020-12) for the Kubernetes structural schema ``structural``
    (see the module docstring for what changes); ``top`` adds the required ``metadata.name``."""
    result: dict[str, Any] = {}
    for key, value in structural.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            result[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif (key == "additionalProperties" and isinstance(value, Mapping)) or key == "items":
            result[key] = to_json_schema(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            continue
        else:
            result[key] = copy.deepcopy(value)
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if structural.get(exclusive) is True and bound in structural:
            result[exclusive] = result.pop(bound)
    if (
        "properties" in structural
        and "additionalProperties" not in structural
        and not structural.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    if structural.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    if structural.get("x-kubernetes-list-type") == "set":
        result["uniqueItems"] = True
    if top:
        properties = result.setdefault("properties", {})
        metadata = dict(properties.get("metadata") or {"type": "object"})
        metadata["required"] = sorted({*metadata.get("required", []), "name"})
        metadata.setdefault("properties", {})["name"] = {"type": "string", "minLength": 1}
        properties["metadata"] = metadata
    return result


def child_schema(structural: Mapping[str, Any], step: str | int) -> Mapping[str, Any] | None:
    """Return the structural schema of ``step`` (a property name, map key or list index) under
    ``structural``, or None when the schema does not describe it."""
    if isinstance(step, int):
        items = structural.get("items")
        return items if isinstance(items, Mapping) else None
    properties = structural.get("properties")
    if isinstance(properties, Mapping) and step in properties:
        sub = properties[step]
        return sub if isinstance(sub, Mapping) else None
    extra = structural.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None
