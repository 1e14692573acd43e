"""Arrange policy objects the way the Rego library reads them from data.

The result is the value of ``data.edgepolicy.policies`` (see docs/decision-contract.md):
``{"finops": {namespace: {name: object}}, "model": {namespace: {name: object}}}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgepolicy.errors import InputError
from edgepolicy.manifests import is_policy_object

_SECTIONS = {"FinOpsPolicy": "finops", "ModelPolicy": "model"}


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


def policies_to_data(
    objs: Iterable[Mapping[str, Any]], *, namespace_default: str = "default"
) -> dict[str, Any]:
    """Return ``data.edgepolicy.policies`` holding the given policy objects.

    Objects that are not FinOpsPolicy or ModelPolicy are ignored. Objects without a namespace
    are placed in ``namespace_default`` (and get it written into their metadata).

    Raises:
        InputError: an object has no name, or two objects share kind, namespace and name.
    """
    data: dict[str, Any] = {section: {} for section in _SECTIONS.values()}
    for obj in objs:
        if not is_policy_object(obj):
            continue
        kind = str(obj["kind"])
        namespace, name = policy_key(obj, namespace_default)
        by_name = data[_SECTIONS[kind]].setdefault(namespace, {})
        if name in by_name:
            raise InputError(f"duplicate {kind} {namespace}/{name}: each policy needs its own name")
        by_name[name] = with_namespace(obj, namespace)
    return data


def with_namespace(obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """Return a shallow copy of ``obj`` whose ``metadata.namespace`` is ``namespace``."""
    copy = dict(obj)
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    copy["metadata"] = {**metadata, "namespace": namespace}
    return copy
