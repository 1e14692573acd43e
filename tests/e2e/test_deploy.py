"""deploy/ is accepted by a real API server: server-side dry runs of the base and the overlay."""

from __future__ import annotations

import pytest
import yaml
from e2e_support import ASSETS, ROOT, Kubectl, seed_policy

pytestmark = pytest.mark.e2e

BASE_OBJECTS = [
    "customresourcedefinition.apiextensions.k8s.io/finopspolicies.policy.apexlogic.com",
    "customresourcedefinition.apiextensions.k8s.io/modelpolicies.policy.apexlogic.com",
    "serviceaccount/edgepolicy-webhook",
    "clusterrole.rbac.authorization.k8s.io/edgepolicy-webhook",
    "clusterrolebinding.rbac.authorization.k8s.io/edgepolicy-webhook",
    "configmap/edgepolicy-opa-config-",
    "service/edgepolicy-webhook",
    "deployment.apps/edgepolicy-webhook",
    "poddisruptionbudget.policy/edgepolicy-webhook",
    "mutatingwebhookconfiguration.admissionregistration.k8s.io/edgepolicy-mutating",
    "validatingwebhookconfiguration.admissionregistration.k8s.io/edgepolicy-validating",
]


@pytest.fixture(scope="module")
def webhook_namespace(kubectl: Kubectl) -> str:
    """The webhook's namespace, created for real: a dry run creates nothing to put objects in."""
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    return "edgepolicy-system"


def _server_dry_run(kubectl: Kubectl, kustomization: str) -> str:
    result = kubectl.run("apply", "--dry-run=server", "-k", str(ROOT / kustomization))
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    return result.stdout


def test_base_is_accepted_by_server_dry_run(kubectl: Kubectl, webhook_namespace: str) -> None:
    output = _server_dry_run(kubectl, "deploy/base")
    for name in BASE_OBJECTS:
        assert any(
            line.startswith(name) and line.endswith("(server dry run)")
            for line in output.splitlines()
        ), f"{name} missing from:\n{output}"
    # A dry run stores nothing: no webhook configuration may lock the test cluster.
    assert kubectl.get("validatingwebhookconfiguration", "edgepolicy-validating", "") is None
    assert kubectl.get("deployment", "edgepolicy-webhook", webhook_namespace) is None


def test_cert_manager_overlay_is_accepted_by_server_dry_run(
    kubectl: Kubectl, webhook_namespace: str
) -> None:
    # cert-manager itself is not installed here: stand-in CRDs give its kinds a schema.
    kubectl.run("apply", "-f", str(ASSETS / "cert-manager-crds.yaml"), check=True)
    kubectl.run(
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/issuers.cert-manager.io",
        "crd/certificates.cert-manager.io",
        check=True,
    )
    output = _server_dry_run(kubectl, "deploy/overlays/cert-manager")
    for created in (
        "issuer.cert-manager.io/edgepolicy-selfsigned",
        "certificate.cert-manager.io/edgepolicy-ca",
        "issuer.cert-manager.io/edgepolicy-ca",
        "certificate.cert-manager.io/edgepolicy-webhook",
    ):
        assert f"{created} created (server dry run)" in output


def test_overlay_serving_certificate_is_signed_by_a_stable_ca(kubectl: Kubectl) -> None:
    # A renewal of the serving certificate must not change the CA the API server trusts.
    rendered = kubectl.run("kustomize", str(ROOT / "deploy/overlays/cert-manager"), check=True)
    documents = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    certificates = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Certificate"}
    issuers = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Issuer"}
    serving_issuer = issuers[certificates["edgepolicy-webhook"]["spec"]["issuerRef"]["name"]]
    ca = certificates["edgepolicy-ca"]["spec"]
    assert serving_issuer["spec"]["ca"]["secretName"] == ca["secretName"]
    assert ca["isCA"] is True
    assert ca["privateKey"]["rotationPolicy"] == "Never"


def test_overlay_injects_the_ca_into_both_webhook_configurations(kubectl: Kubectl) -> None:
    rendered = kubectl.run("kustomize", str(ROOT / "deploy/overlays/cert-manager"), check=True)
    annotation = "cert-manager.io/inject-ca-from: edgepolicy-system/edgepolicy-ca"
    assert rendered.stdout.count(annotation) == 2


def test_crd_accepts_the_seed_policy_unchanged(kubectl: Kubectl) -> None:
    namespace = kubectl.create_namespace("crd-check")
    result = kubectl.apply(seed_policy(namespace), extra=["--dry-run=server"])
    assert result.returncode == 0, result.stderr
    assert "edge-ai-inference-cost-policy created (server dry run)" in result.stdout


def test_crd_rejects_a_policy_without_selector_naming_the_fields(kubectl: Kubectl) -> None:
    namespace = kubectl.create_namespace("crd-check")
    bad = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"costLimits": {"maxCPUCores": -1}},
    }
    # --validate=false: let the API server (not kubectl's client-side check) answer.
    result = kubectl.apply(bad, extra=["--dry-run=server", "--validate=false"])
    assert result.returncode != 0
    assert "spec.targetWorkloadSelector: Required value" in result.stderr
    assert "spec.costLimits.maxCPUCores" in result.stderr


def test_documented_user_overlay_is_accepted_by_server_dry_run(
    kubectl: Kubectl, webhook_namespace: str
) -> None:
    # docs/deploy.md's "my-cluster" overlay: own image, own OPA config, the verification key.
    kubectl.run("apply", "-f", str(ASSETS / "cert-manager-crds.yaml"), check=True)
    rendered = kubectl.run("kustomize", str(ASSETS / "user-overlay"), check=True).stdout
    output = _server_dry_run(kubectl, "tests/e2e/assets/user-overlay")

    assert "image: registry.example.com/platform/edgepolicy:0.1.0" in rendered
    assert "url: https://bundles.example.com" in rendered
    assert rendered.count("name: edgepolicy-bundle-verification-key-") == 2  # object + volume
    assert "deployment.apps/edgepolicy-webhook created (server dry run)" in output
