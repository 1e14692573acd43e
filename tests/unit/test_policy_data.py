"""Arranging policy objects as data.edgepolicy.policies."""

from __future__ import annotations

from typing import Any

import pytest

from edgepolicy.errors import InputError
from edgepolicy.policy_data import policies_to_data, with_namespace


def _policy(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": kind, "metadata": metadata}


def test_policies_are_keyed_by_kind_namespace_and_name() -> None:
    data = policies_to_data(
        [
            _policy("FinOpsPolicy", "cost", "ai"),
            _policy("ModelPolicy", "models", "ai"),
            _policy("FinOpsPolicy", "plain"),
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ignored"}},
        ],
        namespace_default="edge",
    )
    assert set(data) == {"finops", "model"}
    assert set(data["finops"]) == {"ai", "edge"}
    assert data["finops"]["ai"]["cost"]["metadata"]["name"] == "cost"
    assert data["finops"]["edge"]["plain"]["metadata"]["namespace"] == "edge"
    assert data["model"]["ai"]["models"]["kind"] == "ModelPolicy"


def test_empty_input_gives_empty_sections() -> None:
    assert policies_to_data([]) == {"finops": {}, "model": {}}


def test_duplicate_policy_is_rejected() -> None:
    with pytest.raises(InputError, match="duplicate FinOpsPolicy ai/cost"):
        policies_to_data([_policy("FinOpsPolicy", "cost", "ai")] * 2)


def test_policy_without_name_is_rejected() -> None:
    nameless = {"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": "FinOpsPolicy"}
    with pytest.raises(InputError, match="FinOpsPolicy has no metadata.name"):
        policies_to_data([nameless])


def test_with_namespace_does_not_modify_the_original() -> None:
    original = _policy("FinOpsPolicy", "cost")
    copy = with_namespace(original, "ai")
    assert copy["metadata"] == {"name": "cost", "namespace": "ai"}
    assert "namespace" not in original["metadata"]
