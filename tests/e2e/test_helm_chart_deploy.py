"""charts/edgepolicy against deploy/ and a real API server: with its defaults the chart renders
what `kubectl kustomize deploy/overlays/cert-manager` renders (so the two cannot drift), its
`configmap` bundle source renders deploy/components/bundle-service, and every variant passes
`kubectl apply --server-side --dry-run=server` on the test kube-apiserver.

cert-manager is not installed on the test control plane: tests/e2e/assets/cert-manager-crds.yaml
gives its Issuer and Certificate kinds (schema left open) so the chart's cert-manager objects are
accepted as objects; every other object is checked against its full built-in or CRD schema."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import ASSETS, BIN, ROOT, Kubectl

pytestmark = pytest.mark.e2e

CHART = ROOT / "charts" / "edgepolicy"
NAMESPACE = "edgepolicy-system"
OCI = (
    "bundle.source=oci",
    "bundle.oci.registry=https://registry.example.com",
    "bundle.oci.reference=registry.example.com/platform/edgepolicy-bundle:1.4.0",
    "bundle.bearerTokenSecret=registry-token",
)
# Objects a kustomize configMapGenerator names with a content hash; the chart rolls pods with a
# checksum annotation instead.
GENERATED = re.compile(r"^(edgepolicy-opa-config)-[a-z0-9]{10}$")

Objects = dict[tuple[str, str], dict[str, Any]]


def helm_template(*values: str) -> str:
    helm = BIN / "helm"
    if not helm.exists():
        pytest.fail(
            f"{helm} missing: build it with `make tools-e2e` (scripts/install-tools.sh helm)"
        )
    args = [arg for value in values for arg in ("--set", value)]
    result = subprocess.run(
        [str(helm), "template", "edgepolicy", str(CHART), "--namespace", NAMESPACE,
         "--include-crds", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def _normalized(document: dict[str, Any]) -> dict[str, Any]:
    """What must agree between chart and kustomize: everything but labels, the pod template's
    annotations (the chart's checksum) and generated-name hashes; of the annotations only the
    cert-manager CA injection counts."""
    text = yaml.safe_dump(document)
    text = re.sub(r"\b(edgepolicy-opa-config)-[a-z0-9]{10}\b", r"\1", text)
    document = yaml.safe_load(text)
    metadata = document["metadata"]
    metadata.pop("labels", None)
    annotations = metadata.pop("annotations", {})
    if "cert-manager.io/inject-ca-from" in annotations:
        metadata["annotations"] = {
            "cert-manager.io/inject-ca-from": annotations["cert-manager.io/inject-ca-from"]
        }
    if document["kind"] == "Deployment":
        document["spec"]["template"]["metadata"].pop("annotations", None)
    if document["kind"] == "ConfigMap" and "config.yaml" in document.get("data", {}):
        document["data"]["config.yaml"] = yaml.safe_load(document["data"]["config.yaml"])
    return document


def _objects(text: str) -> Objects:
    documents = [_normalized(d) for d in yaml.safe_load_all(text) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def _kustomize(kubectl: Kubectl, path: Path) -> Objects:
    return _objects(kubectl.run("kustomize", str(path), check=True).stdout)


def test_chart_defaults_render_the_cert_manager_overlay(kubectl: Kubectl) -> None:
    deploy = _kustomize(kubectl, ROOT / "deploy/overlays/cert-manager")
    chart = _objects(helm_template())
    # Helm installs into an existing namespace (`--namespace`): the chart has no Namespace.
    deploy.pop(("Namespace", NAMESPACE))
    assert sorted(chart) == sorted(deploy)
    for key, expected in deploy.items():
        assert chart[key] == expected, f"{key[0]}/{key[1]} differs between chart and deploy/"


def test_chart_configmap_source_renders_the_bundle_service_component(kubectl: Kubectl) -> None:
    deploy = _kustomize(kubectl, ASSETS / "bundle-service-overlay")
    chart = _objects(helm_template("bundle.source=configmap"))
    component = [
        ("Deployment", "edgepolicy-bundles"),
        ("Service", "edgepolicy-bundles"),
        ("Role", "edgepolicy-bundle-publisher"),
    ]
    for key in component:
        assert chart[key] == deploy[key], f"{key[0]}/{key[1]} differs between chart and deploy/"
    # deploy/base's OPA configuration already points at that service.
    assert (
        chart["ConfigMap", "edgepolicy-opa-config"] == deploy["ConfigMap", "edgepolicy-opa-config"]
    )


@pytest.fixture(scope="module")
def release_namespace(kubectl: Kubectl) -> str:
    """The namespace Helm installs into, created for real (a dry run creates nothing), and the
    cert-manager stand-in CRDs."""
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    kubectl.run("apply", "-f", str(ASSETS / "cert-manager-crds.yaml"), check=True)
    kubectl.run(
        "wait", "--for=condition=established", "--timeout=30s",
        "crd/issuers.cert-manager.io", "crd/certificates.cert-manager.io", check=True,
    )  # fmt: skip
    return NAMESPACE


@pytest.mark.parametrize(
    "values",
    [
        (),
        OCI,
        ("bundle.source=configmap",),
        ("certManager.enabled=false", "tls.caBundle=Q0EgUEVN", "failurePolicy=Ignore"),
    ],
    ids=["defaults", "oci", "configmap", "without-cert-manager"],
)
def test_rendered_chart_passes_server_side_dry_run(
    kubectl: Kubectl, release_namespace: str, values: tuple[str, ...]
) -> None:
    rendered = helm_template(*values)
    result = kubectl.run(
        "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-",
        stdin=rendered,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    applied = {line.split()[0] for line in result.stdout.splitlines()}
    expected = {
        f"{d['kind'].lower()}{_group(d)}/{d['metadata']['name']}"
        for d in yaml.safe_load_all(rendered)
        if d
    }
    assert applied == expected
    # A dry run stores nothing: no webhook configuration may lock the test cluster.
    assert kubectl.get("validatingwebhookconfiguration", "edgepolicy-validating", "") is None
    assert kubectl.get("deployment", "edgepolicy-webhook", release_namespace) is None


def _group(document: dict[str, Any]) -> str:
    group = document["apiVersion"].rpartition("/")[0]
    return f".{group}" if group else ""
