"""Arrange validated policies the way the Rego library reads them from data.

The result is the value of ``data.edgepolicy.policies`` (see docs/decision-contract.md):
``{"validated": true, "finops": {namespace: {name: object}}, "model": {namespace: {name:
object}}, "invalid": {namespace: [record]}}``: the valid policies by kind, the invalid ones as
the validator's records, and the mark that the decision trusts only on the validator's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgepolicy.errors import InputError
from edgepolicy.validated_policies import ValidatedPolicies

_SECTIONS = {"FinOpsPolicy": "finops", "ModelPolicy": "model"}


def data_section(kind: str) -> str:
    """Return the key under ``data.edgepolicy.policies`` of valid policies of ``kind``
    (``finops``, ``model``; a new kind's name in lower case)."""
    return _SECTIONS.get(kind, kind.lower())


def policy_key(obj: Mapping[str, Any], namespace_default: str = "default") -> tuple[str, str]:
    """Return the ``(namespace, name)`` a policy object is stored under.

    Raises:
        InputError: the object has no ``metadata.name``.
    """
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{obj.get('kind')} has no metadata.name")
    namespace = metadata.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        namespace = namespace_default
    return namespace, name


def policies_to_data(validated: ValidatedPolicies) -> dict[str, Any]:
    """Return ``data.edgepolicy.policies`` holding the validator's output ``validated``.

    Raises:
        InputError: a policy has no name, or two share kind, namespace and name.
    """
    data: dict[str, Any] = {"validated": True, **{s: {} for s in _SECTIONS.values()}}
    data["invalid"] = {}
    seen: set[tuple[str, str, str]] = set()

    def claim(kind: str, namespace: str, name: str) -> None:
        if not name:
            raise InputError(f"{kind} has no metadata.name")
        if (kind, namespace, name) in seen:
            raise InputError(f"duplicate {kind} {namespace}/{name}: each policy needs its own name")
        seen.add((kind, namespace, name))

    for obj in validated.valid:
        kind = str(obj["kind"])
        namespace, name = policy_key(obj)
        claim(kind, namespace, name)
        data.setdefault(data_section(kind), {}).setdefault(namespace, {})[name] = dict(obj)
    for policy in validated.invalid:
        claim(policy.kind, policy.namespace, policy.name)
        data["invalid"].setdefault(policy.namespace, []).append(policy.to_document())
    return data


def with_namespace(obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """Return a shallow copy of ``obj`` whose ``metadata.namespace`` is ``namespace``."""
    copy = dict(obj)
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    copy["metadata"] = {**metadata, "namespace": namespace}
    return copy
