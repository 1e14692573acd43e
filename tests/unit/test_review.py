"""The input builder: AdmissionReviews as the API server sends them, plus context."""

from __future__ import annotations

from typing import Any

import pytest

from edgepolicy.errors import InputError
from edgepolicy.input_builder import admission_review, decision_input, group_version, resource_name
from edgepolicy.validated_policies import validate_policies

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "inference", "labels": {"app": "x"}},
    "spec": {"replicas": 2},
}


def test_create_review_has_kind_resource_namespace_and_object() -> None:
    review = admission_review(DEPLOYMENT, namespace_default="ai", uid="u-1", username="ci")
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert review["kind"] == "AdmissionReview"
    request = review["request"]
    assert request["uid"] == "u-1"
    assert request["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert request["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
    assert request["requestKind"] == request["kind"]
    assert request["namespace"] == "ai"
    assert request["name"] == "inference"
    assert request["operation"] == "CREATE"
    assert request["userInfo"]["username"] == "ci"
    assert request["object"]["metadata"]["namespace"] == "ai"
    assert request["oldObject"] is None
    assert request["dryRun"] is False
    assert request["options"]["kind"] == "CreateOptions"


def test_input_object_is_not_modified() -> None:
    admission_review(DEPLOYMENT, namespace_default="ai")
    assert "namespace" not in DEPLOYMENT["metadata"]


def test_object_namespace_wins_over_default() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "edge"}}
    request = admission_review(pod, namespace_default="ai")["request"]
    assert request["namespace"] == "edge"
    assert request["kind"]["group"] == ""
    assert request["resource"]["resource"] == "pods"


def test_cluster_scoped_kind_gets_no_namespace() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ai"}}
    request = admission_review(namespace)["request"]
    assert request["namespace"] == ""
    assert "namespace" not in request["object"]["metadata"]


def test_update_carries_old_object_and_delete_moves_object_to_old() -> None:
    old = {**DEPLOYMENT, "spec": {"replicas": 1}}
    update = admission_review(DEPLOYMENT, operation="UPDATE", old_object=old)["request"]
    assert update["oldObject"]["spec"] == {"replicas": 1}
    assert update["options"]["kind"] == "UpdateOptions"
    delete = admission_review(DEPLOYMENT, operation="DELETE")["request"]
    assert delete["object"] is None
    assert delete["oldObject"]["metadata"]["name"] == "inference"


def test_unknown_operation_is_rejected() -> None:
    with pytest.raises(InputError, match="operation must be one of"):
        admission_review(DEPLOYMENT, operation="PATCH")


def test_each_review_gets_a_fresh_uid() -> None:
    assert (
        admission_review(DEPLOYMENT)["request"]["uid"]
        != admission_review(DEPLOYMENT)["request"]["uid"]
    )


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        ("Deployment", "deployments"),
        ("StatefulSet", "statefulsets"),
        ("HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        ("FinOpsPolicy", "finopspolicies"),
        ("ModelPolicy", "modelpolicies"),
        ("PriorityClass", "priorityclasses"),
        ("PodSecurityPolicy", "podsecuritypolicies"),
        ("NetworkPolicy", "networkpolicies"),
        ("Ingress", "ingresses"),
        ("Gateway", "gateways"),
        ("Endpoints", "endpoints"),
        ("Mesh", "meshes"),
    ],
)
def test_resource_names(kind: str, resource: str) -> None:
    assert resource_name(kind) == resource


def test_group_version() -> None:
    assert group_version("autoscaling/v2") == ("autoscaling", "v2")
    assert group_version("v1") == ("", "v1")


def test_decision_input_adds_trusted_context_and_drops_a_forged_one() -> None:
    review = {**admission_review(DEPLOYMENT), "context": {"models": {"forged": True}}}
    policy = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "p", "namespace": "ai"},
        "spec": {"targetWorkloadSelector": {}},
    }
    broken = {**policy, "metadata": {"name": "q", "namespace": "ai"}, "spec": {}}
    validated = validate_policies([policy, broken])
    document = decision_input(review, policies=validated, workloads=(DEPLOYMENT,))
    assert document["context"] == {
        "policies": [policy],
        "invalidPolicies": [
            {
                "kind": "FinOpsPolicy",
                "namespace": "ai",
                "name": "q",
                "errors": [
                    {
                        "field": "spec.targetWorkloadSelector",
                        "message": "is required: a label selector with matchLabels and/or "
                        "matchExpressions",
                    }
                ],
                "object": broken,
            }
        ],
        "policiesValidated": True,
        "workloads": [DEPLOYMENT],
    }
    assert document["request"] == review["request"]
    with_models = decision_input(review, models={"server": {"quantized": True}})
    assert with_models["context"]["models"] == {"server": {"quantized": True}}
