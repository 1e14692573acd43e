"""The audit's inputs: no-op UPDATE reviews with the webhook's context (unit), and what that
choice means to the real Rego (tests/integration/test_audit_decisions.py)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from edgepolicy.auditing import AUDIT_USERNAME, audit_input, audit_objects, policies_by_namespace
from edgepolicy.decision import Decision
from edgepolicy.validated_policies import validate_policies


def _deployment(name: str, namespace: str = "ai") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"template": {"metadata": {"labels": {"app": name}}}},
    }


def _policy(name: str, namespace: str, cpu: int) -> dict[str, Any]:
    return {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": {"app": "inference"}},
            "costLimits": {"maxCPUCores": cpu},
        },
    }


def _hpa(name: str, target: str, namespace: str = "ai") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}},
    }


def test_input_is_the_no_op_update_of_the_stored_object() -> None:
    stored = _deployment("inference")
    before = copy.deepcopy(stored)

    policies = validate_policies([_policy("p", "ai", 8)])
    document = audit_input(stored, policies=policies, workloads=[])

    request = document["request"]
    assert request["operation"] == "UPDATE"
    assert request["object"] == stored and request["oldObject"] == stored
    assert request["object"] is not request["oldObject"]
    assert request["options"] == {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}
    assert request["userInfo"]["username"] == AUDIT_USERNAME
    assert (request["namespace"], request["name"]) == ("ai", "inference")
    assert document["context"] == {**policies.context(), "workloads": []}
    assert document["context"]["policies"] == [_policy("p", "ai", 8)]
    assert stored == before


def test_policies_are_grouped_by_namespace_and_later_copies_win() -> None:
    from_file = _policy("budget", "ai", 8)
    from_cluster = _policy("budget", "ai", 16)
    other = _policy("budget", "ml", 4)

    grouped = policies_by_namespace([from_file, other, from_cluster])

    assert grouped == {"ai": [from_cluster], "ml": [other]}


def test_objects_get_their_namespace_policies_and_related_objects_in_order() -> None:
    asked: list[Mapping[str, Any]] = []

    def decide(document: Mapping[str, Any]) -> Decision:
        asked.append(document)
        return Decision(allowed=True)

    objects = [_deployment("web"), _hpa("web-scaler", "web"), _deployment("job", "ml")]
    policies = [_policy("budget", "ai", 8), _policy("budget", "ml", 4)]

    report = audit_objects(objects, policies=policies, decide=decide)

    assert [(r.namespace, r.kind, r.name) for r in report.results] == [
        ("ai", "Deployment", "web"),
        ("ai", "HorizontalPodAutoscaler", "web-scaler"),
        ("ml", "Deployment", "job"),
    ]
    assert report.results[0].file == "apis/apps/v1/namespaces/ai/deployments/web"
    by_name = {doc["request"]["name"]: doc for doc in asked}
    assert by_name["web"]["context"]["workloads"] == [objects[1]]
    assert by_name["web-scaler"]["context"]["workloads"] == [objects[0]]
    assert by_name["job"]["context"]["policies"] == [policies[1]]
    assert by_name["job"]["context"]["workloads"] == []
    assert by_name["web"]["context"]["policies"] == [policies[0]]
