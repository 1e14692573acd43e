"""End to end: the real API server calls the real `edgepolicy serve`; `kubectl` applies objects.

The webhook runs its own local OPA with the shipped Rego library, the seed FinOpsPolicy (through
``--policies``) and ``model.quantization`` in warn mode (``--data``). It reads FinOpsPolicies,
HPAs and HPA targets stored in the cluster through ``--kubeconfig``, as the ServiceAccount of
deploy/base/rbac.yaml with exactly its permissions. The webhook configurations are the ones
shipped in deploy/base, pointed at the webhook's loopback URL with the test CA as caBundle.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from e2e_support import (
    IDLE_ANNOTATION,
    POLICY_LABEL,
    SEED_NAMESPACE,
    SEED_POLICY_ID,
    Kubectl,
    Webhook,
    WebhookTls,
    assert_denied,
    compliant,
    deployment,
    eventually,
    hpa,
    over_budget,
    registered,
    seed_policy,
    start_seed_webhook,
)

from edgepolicy.validated_policies import check_policy

pytestmark = pytest.mark.e2e

NAMESPACE = SEED_NAMESPACE
POLICY = SEED_POLICY_ID


@pytest.fixture(scope="module")
def webhook(
    kubectl: Kubectl, webhook_tls: WebhookTls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    """`edgepolicy serve` registered as validating + mutating webhook (failurePolicy Fail)."""
    kubectl.create_namespace(NAMESPACE)
    server = start_seed_webhook(kubectl, webhook_tls, tmp_path_factory.mktemp("webhook"))
    try:
        with registered(kubectl, server.url, webhook_tls.ca_pem):
            yield server
    finally:
        server.stop()


def test_over_budget_deployment_is_denied_with_rule_ids(kubectl: Kubectl, webhook: Webhook) -> None:
    result = kubectl.apply(over_budget("too-big"))

    assert_denied(result, "finops.cpu", "finops.gpu-hours", POLICY)
    assert re.search(r"\b12\b", result.stderr), "the message shows the numbers compared"
    assert kubectl.get("deployment", "too-big", NAMESPACE) is None


def test_compliant_deployment_is_stored_with_the_mutation(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    result = kubectl.apply(compliant("inference"))

    assert result.returncode == 0, result.stderr
    assert "deployment.apps/inference created" in result.stdout
    stored = kubectl.get("deployment", "inference", NAMESPACE)
    assert stored is not None
    assert stored["metadata"]["labels"][POLICY_LABEL] == "edge-ai-inference-cost-policy"
    assert stored["spec"]["template"]["metadata"]["annotations"][IDLE_ANNOTATION] == "30m"


def test_reapplying_a_mutated_deployment_changes_nothing(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    kubectl.apply(compliant("stable"), check=True)
    first = kubectl.get("deployment", "stable", NAMESPACE)

    result = kubectl.apply(compliant("stable"))

    assert result.returncode == 0, result.stderr
    assert "deployment.apps/stable unchanged" in result.stdout
    second = kubectl.get("deployment", "stable", NAMESPACE)
    assert first is not None and second is not None
    assert second["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_warn_rule_shows_a_kubectl_warning_and_admits(kubectl: Kubectl, webhook: Webhook) -> None:
    result = kubectl.apply(compliant("warned"))

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert any("model.quantization" in line and POLICY in line for line in warnings), result.stderr
    assert kubectl.get("deployment", "warned", NAMESPACE) is not None


def test_out_of_bounds_hpa_is_denied_and_in_bounds_hpa_admitted(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    kubectl.apply(compliant("scaled"), check=True)

    too_wide = kubectl.apply(
        hpa("scaled-wide", NAMESPACE, "scaled", min_replicas=1, max_replicas=10, cpu=70)
    )
    within = kubectl.apply(
        hpa("scaled", NAMESPACE, "scaled", min_replicas=1, max_replicas=3, cpu=70)
    )

    assert_denied(too_wide, "finops.hpa", POLICY)
    assert kubectl.get("hpa", "scaled-wide", NAMESPACE) is None
    assert within.returncode == 0, within.stderr


def test_policy_applied_with_kubectl_is_validated_and_enforced(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    namespace = kubectl.create_namespace("ai-cluster")  # no policy from --policies here

    applied = kubectl.apply(seed_policy(namespace))

    assert applied.returncode == 0, applied.stderr
    eventually(  # the webhook caches cluster lookups for a few seconds
        lambda: assert_denied(
            kubectl.apply(over_budget("too-big", namespace), extra=["--dry-run=server"]),
            "finops.cpu",
            f"{namespace}/edge-ai-inference-cost-policy",
        )
    )


def test_crd_refuses_what_edgepolicy_refuses_with_the_same_field_and_message(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    # One schema: the CRD's CEL rule says `In` needs values, for the API server and for
    # edgepolicy's validator alike.
    policy = seed_policy(NAMESPACE)
    policy["metadata"]["name"] = "empty-in"
    policy["spec"]["targetWorkloadSelector"]["matchExpressions"] = [
        {"key": "tier", "operator": "In", "values": []}
    ]

    result = kubectl.apply(policy)

    assert result.returncode != 0, result.stdout
    (error,) = check_policy(policy)[1]
    assert error.field in result.stderr, result.stderr
    assert error.message in result.stderr, result.stderr
    assert kubectl.get("finopspolicy", "empty-in", NAMESPACE) is None


def test_null_selector_fields_are_stored_and_enforced(kubectl: Kubectl, webhook: Webhook) -> None:
    namespace = kubectl.create_namespace("ai-null-fields")
    policy = seed_policy(namespace)
    policy["spec"]["targetWorkloadSelector"]["matchExpressions"] = None
    policy["spec"]["costLimits"]["dailyGPUHours"] = 72

    applied = kubectl.apply(policy)

    assert applied.returncode == 0, applied.stderr
    eventually(
        lambda: assert_denied(
            kubectl.apply(over_budget("too-big", namespace), extra=["--dry-run=server"]),
            "finops.cpu",
            f"{namespace}/edge-ai-inference-cost-policy",
        )
    )


def test_crd_schema_refuses_inverted_replica_bounds(kubectl: Kubectl, webhook: Webhook) -> None:
    policy = seed_policy(NAMESPACE)
    policy["metadata"]["name"] = "inverted-bounds"
    policy["spec"]["autoScale"].update({"minReplicas": 5, "maxReplicas": 2})

    result = kubectl.apply(policy)

    assert result.returncode != 0, result.stdout
    assert "must not exceed spec.autoScale.maxReplicas (5 > 2)" in result.stderr, result.stderr
    assert kubectl.get("finopspolicy", "inverted-bounds", NAMESPACE) is None


def test_kube_system_is_never_sent_to_the_webhook(kubectl: Kubectl, webhook: Webhook) -> None:
    governed = kubectl.apply(compliant("logged"))
    before = webhook.requests_answered()
    exempt = kubectl.apply(over_budget("system-agent", "kube-system"))
    after = webhook.requests_answered()

    assert governed.returncode == 0, governed.stderr
    assert exempt.returncode == 0, exempt.stderr
    assert before >= 2, "the metrics count the governed request (mutate + validate)"
    assert after == before
    assert kubectl.get("deployment", "system-agent", "kube-system") is not None
    decisions = webhook.decisions()
    assert any(entry["name"] == "logged" for entry in decisions), "the decision log works"
    assert not [entry for entry in decisions if entry["namespace"] == "kube-system"]


def test_server_side_dry_run_is_decided_but_not_stored(kubectl: Kubectl, webhook: Webhook) -> None:
    admitted = kubectl.apply(compliant("rehearsal"), extra=["--dry-run=server"])
    denied = kubectl.apply(over_budget("rehearsal-big"), extra=["--dry-run=server"])

    assert admitted.returncode == 0, admitted.stderr
    assert "deployment.apps/rehearsal created (server dry run)" in admitted.stdout
    assert kubectl.get("deployment", "rehearsal", NAMESPACE) is None
    assert_denied(denied, "finops.cpu")
    assert any(
        entry["name"] == "rehearsal" and entry["dryRun"] is True for entry in webhook.decisions()
    )


def test_update_over_budget_is_denied_and_the_stored_object_kept(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    kubectl.apply(compliant("grows"), check=True)
    bigger = compliant("grows")
    bigger["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "4"

    result = kubectl.apply(bigger)

    assert_denied(result, "finops.cpu", POLICY)
    stored = kubectl.get("deployment", "grows", NAMESPACE)
    assert stored is not None
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"
    assert any(
        entry["name"] == "grows" and entry["operation"] == "UPDATE" and not entry["allowed"]
        for entry in webhook.decisions()
    )


def test_autoscaling_v1_hpa_is_converted_and_denied(kubectl: Kubectl, webhook: Webhook) -> None:
    kubectl.apply(compliant("scaled-v1"), check=True)
    legacy = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "scaled-v1", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled-v1"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "targetCPUUtilizationPercentage": 70,
        },
    }

    result = kubectl.apply(legacy)

    assert_denied(result, "finops.hpa", "maxReplicas 10")


def test_bare_pod_with_a_too_long_idle_shutdown_is_denied(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "debug",
            "namespace": NAMESPACE,
            "labels": {"app": "ai-inference-service", "env": "production-edge"},
            "annotations": {IDLE_ANNOTATION: "45m"},
        },
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": "registry.example/ai/inference:1.0",
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                }
            ]
        },
    }

    result = kubectl.apply(pod)

    assert_denied(result, "finops.idle-shutdown", "45m")
    assert kubectl.get("pod", "debug", NAMESPACE) is None


def test_dryrun_rule_is_logged_and_counted_but_neither_blocks_nor_warns(
    kubectl: Kubectl, webhook: Webhook
) -> None:
    # 4 replicas > autoScale.maxReplicas 3 (finops.replicas, in dryrun mode); 4 x 1 core <= 8.
    result = kubectl.apply(deployment("rehearsed-rule", NAMESPACE, replicas=4, cpu="1"))

    assert result.returncode == 0, result.stderr
    assert "finops.replicas" not in result.stderr
    assert any(
        entry["name"] == "rehearsed-rule" and entry.get("dryrun") == ["finops.replicas"]
        for entry in webhook.decisions()
    )
    status, metrics = webhook.get("/metrics")
    assert status == 200
    assert any(
        line.startswith("edgepolicy_decisions_total{")
        and 'action="dryrun"' in line
        and 'rule="finops.replicas"' in line
        and float(line.rsplit(" ", 1)[1]) >= 1
        for line in metrics.splitlines()
    ), metrics
