"""Arranging the validator's output as data.edgepolicy.policies."""

from __future__ import annotations

from typing import Any

import pytest

from edgepolicy.errors import InputError
from edgepolicy.policy_data import policies_to_data, with_namespace
from edgepolicy.validated_policies import validate_policies

SELECTOR = {"targetWorkloadSelector": {"matchLabels": {"app": "x"}}}


def _policy(kind: str, name: str, namespace: str | None = None, spec: Any = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": SELECTOR if spec is None else spec,
    }


def test_valid_policies_are_keyed_by_kind_namespace_and_name_invalid_ones_listed() -> None:
    validated = validate_policies(
        [
            _policy("FinOpsPolicy", "cost", "ai"),
            _policy("FinOpsPolicy", "plain"),
            _policy("FinOpsPolicy", "broken", "ai", {**SELECTOR, "costLimits": {"maxCPUCores": 0}}),
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ignored"}},
        ],
        namespace_default="edge",
    )
    data = policies_to_data(validated)
    assert data["validated"] is True
    assert set(data["finops"]) == {"ai", "edge"}
    assert data["finops"]["ai"]["cost"]["metadata"]["name"] == "cost"
    assert data["finops"]["edge"]["plain"]["metadata"]["namespace"] == "edge"
    assert "broken" not in data["finops"]["ai"]
    [record] = data["invalid"]["ai"]
    assert record["kind"] == "FinOpsPolicy"
    assert record["name"] == "broken"
    assert record["errors"] == [
        {
            "field": "spec.costLimits.maxCPUCores",
            "message": "must be a number greater than 0, got 0",
        }
    ]
    assert record["object"]["spec"] == {**SELECTOR, "costLimits": {}}


def test_empty_input_gives_empty_sections() -> None:
    assert policies_to_data(validate_policies([])) == {
        "validated": True,
        "finops": {},
        "model": {},
        "invalid": {},
    }


def test_duplicate_policy_is_rejected() -> None:
    with pytest.raises(InputError, match="duplicate FinOpsPolicy ai/cost"):
        policies_to_data(validate_policies([_policy("FinOpsPolicy", "cost", "ai")] * 2))


def test_policy_without_name_is_rejected() -> None:
    nameless = {"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": "FinOpsPolicy", "spec": {}}
    with pytest.raises(InputError, match="FinOpsPolicy has no metadata.name"):
        policies_to_data(validate_policies([nameless]))


def test_with_namespace_does_not_modify_the_original() -> None:
    original = _policy("FinOpsPolicy", "cost")
    copy = with_namespace(original, "ai")
    assert copy["metadata"] == {"name": "cost", "namespace": "ai"}
    assert "namespace" not in original["metadata"]
