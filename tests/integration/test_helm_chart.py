"""charts/edgepolicy through the real `helm` (built by scripts/install-tools.sh helm): strict lint
and rendering with the default values and each bundle source, checked on the rendered objects."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "edgepolicy"
HELM = ROOT / ".tools" / "bin" / "helm"
NAMESPACE = "edgepolicy-system"
KEY_FILE = ROOT / "tests/e2e/assets/user-overlay/bundle-signing.pub"
PUBLIC_KEY = KEY_FILE.read_text()
OCI_VALUES = (
    "bundle.source=oci",
    "bundle.oci.registry=https://registry.example.com",
    "bundle.oci.reference=registry.example.com/platform/edgepolicy-bundle:1.4.0",
)
SOURCES: dict[str, tuple[str, ...]] = {
    "http": ("bundle.source=http", "bundle.http.url=https://bundles.example.com/edge"),
    "oci": OCI_VALUES,
    "configmap": ("bundle.source=configmap",),
}
DIGEST = "sha256:" + "c" * 64


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} missing: build it with `make tools` (scripts/install-tools.sh helm)")
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _set_args(values: Sequence[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def render_text(*values: str, extra: Sequence[str] = ()) -> str:
    result = helm(
        "template", "edgepolicy", str(CHART), "--namespace", NAMESPACE, *extra, *_set_args(values)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(*values: str, extra: Sequence[str] = ()) -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered objects by (kind, name)."""
    documents = [d for d in yaml.safe_load_all(render_text(*values, extra=extra)) if d]
    objects = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    assert len(objects) == len(documents), "two objects with the same kind and name"
    return objects


def opa_config(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(
        objects["ConfigMap", "edgepolicy-opa-config"]["data"]["config.yaml"]
    )
    return config


def containers(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    spec = objects["Deployment", "edgepolicy-webhook"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def webhooks(objects: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        hook
        for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
        for hook in objects[kind, f"edgepolicy-{kind[: -len('WebhookConfiguration')].lower()}"][
            "webhooks"
        ]
    ]


LINTED = {
    "defaults": (),
    **SOURCES,
    "without-cert-manager": ("certManager.enabled=false", "tls.caBundle=Q0EgUEVN"),
}


@pytest.mark.parametrize("variant", LINTED)
def test_helm_lint_strict_passes(variant: str) -> None:
    values = LINTED[variant]
    result = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *_set_args(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_lint_fails_on_values_the_schema_refuses() -> None:
    result = helm("lint", "--strict", str(CHART), "--set", "failurePolicy=Maybe")
    assert result.returncode != 0
    assert "failurePolicy" in result.stdout + result.stderr


def test_defaults_render_the_webhook_as_deploy_does() -> None:
    objects = render()
    for hook in webhooks(objects):
        assert hook["failurePolicy"] == "Fail"
        [expression] = hook["namespaceSelector"]["matchExpressions"]
        assert expression == {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", NAMESPACE],
        }
        assert hook["clientConfig"]["service"]["namespace"] == NAMESPACE
    deployment = objects["Deployment", "edgepolicy-webhook"]
    assert deployment["spec"]["replicas"] == 2
    webhook, opa = containers(objects)["webhook"], containers(objects)["opa"]
    assert webhook["image"] == "ghcr.io/apexlogic/edgepolicy:0.1.0"  # the chart's appVersion
    assert opa["image"] == "openpolicyagent/opa:1.22.3"
    assert webhook["resources"]["limits"] == {"cpu": "1", "memory": "384Mi"}
    assert (
        "--set-file=keys.edgepolicy-bundle.key=/etc/opa/keys/bundle-verification.pem" in opa["args"]
    )
    # No key given: the pods mount the ConfigMap the user creates, as with deploy/.
    assert ("ConfigMap", "edgepolicy-bundle-verification-key") not in objects
    assert ("Deployment", "edgepolicy-bundles") not in objects
    # cert-manager on: the CA reaches both webhook configurations through the injector.
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        [configuration] = [o for (k, _), o in objects.items() if k == kind]
        assert configuration["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": f"{NAMESPACE}/edgepolicy-ca"
        }
    certificate = objects["Certificate", "edgepolicy-webhook"]["spec"]
    assert certificate["dnsNames"][0] == f"edgepolicy-webhook.{NAMESPACE}.svc"


def test_values_reach_the_rendered_objects() -> None:
    objects = render(
        "replicas=3",
        "failurePolicy=Ignore",
        "excludedNamespaces={kube-system,cert-manager,cilium}",
        "resources.requests.cpu=250m",
        "resources.limits.memory=512Mi",
        "opa.resources.limits.memory=300Mi",
        "workers=4",
    )
    assert objects["Deployment", "edgepolicy-webhook"]["spec"]["replicas"] == 3
    for hook in webhooks(objects):
        assert hook["failurePolicy"] == "Ignore"
        [expression] = hook["namespaceSelector"]["matchExpressions"]
        assert expression["values"] == ["kube-system", "cert-manager", "cilium", NAMESPACE]
    webhook, opa = containers(objects)["webhook"], containers(objects)["opa"]
    assert webhook["resources"] == {
        "requests": {"cpu": "250m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert opa["resources"]["limits"]["memory"] == "300Mi"
    assert "--workers=4" in webhook["args"]


def test_the_release_namespace_is_excluded_even_when_left_out() -> None:
    objects = render(extra=["--set-json", "excludedNamespaces=[]"])
    for hook in webhooks(objects):
        [expression] = hook["namespaceSelector"]["matchExpressions"]
        assert expression["values"] == [NAMESPACE]


def _common_opa_config(config: dict[str, Any]) -> None:
    bundle = config["bundles"]["edgepolicy"]
    assert bundle["service"] == "bundles"
    assert bundle["persist"] is True
    assert bundle["signing"] == {"keyid": "edgepolicy-bundle"}
    assert config["keys"] == {"edgepolicy-bundle": {"algorithm": "ES256"}}
    assert config["persistence_directory"] == "/var/lib/opa"


def test_http_source_points_the_sidecar_at_the_url() -> None:
    config = opa_config(render(*SOURCES["http"]))
    _common_opa_config(config)
    assert config["services"] == {"bundles": {"url": "https://bundles.example.com/edge"}}
    assert config["bundles"]["edgepolicy"]["resource"] == "edgepolicy.tar.gz"
    assert config["bundles"]["edgepolicy"]["polling"]["long_polling_timeout_seconds"] == 60


def test_default_opa_config_is_deploy_base_opa_config() -> None:
    expected = yaml.safe_load((ROOT / "deploy/base/opa-config.yaml").read_text())
    assert opa_config(render()) == expected


def test_oci_source_configures_an_oci_service() -> None:
    objects = render(*OCI_VALUES)
    config = opa_config(objects)
    _common_opa_config(config)
    assert config["services"] == {"bundles": {"url": "https://registry.example.com", "type": "oci"}}
    bundle = config["bundles"]["edgepolicy"]
    assert bundle["resource"] == "registry.example.com/platform/edgepolicy-bundle:1.4.0"
    assert "long_polling_timeout_seconds" not in bundle["polling"]  # registries do not long-poll
    assert ("Deployment", "edgepolicy-bundles") not in objects


def test_oci_source_without_a_reference_is_refused() -> None:
    result = helm("template", str(CHART), "--set", "bundle.source=oci")
    assert result.returncode != 0
    assert "reference" in result.stderr or "registry" in result.stderr


def test_bearer_token_secret_is_mounted_and_used_for_oci() -> None:
    objects = render(*OCI_VALUES, "bundle.bearerTokenSecret=registry-token")
    config = opa_config(objects)
    assert config["services"]["bundles"]["credentials"] == {
        "bearer": {"scheme": "Basic", "token_path": "/etc/opa/credentials/token"}
    }  # OPA base64-encodes an oci token itself: user:password (test_helm_chart_sidecar.py)
    opa = containers(objects)["opa"]
    assert {
        "name": "bundle-credentials",
        "mountPath": "/etc/opa/credentials",
        "readOnly": True,
    } in (opa["volumeMounts"])
    volumes = objects["Deployment", "edgepolicy-webhook"]["spec"]["template"]["spec"]["volumes"]
    [secret] = [v["secret"] for v in volumes if v["name"] == "bundle-credentials"]
    assert secret["secretName"] == "registry-token"


def test_configmap_source_runs_the_bundle_service_and_points_the_sidecar_at_it() -> None:
    objects = render(*SOURCES["configmap"], "bundle.configmap.name=policies")
    config = opa_config(objects)
    _common_opa_config(config)
    assert config["services"] == {
        "bundles": {"url": f"http://edgepolicy-bundles.{NAMESPACE}.svc:8080"}
    }
    assert config["bundles"]["edgepolicy"]["resource"] == "edgepolicy.tar.gz"
    service = objects["Deployment", "edgepolicy-bundles"]["spec"]["template"]["spec"]
    assert service["volumes"][0]["configMap"]["name"] == "policies"
    publisher = objects["Role", "edgepolicy-bundle-publisher"]
    assert publisher["rules"][1]["resourceNames"] == ["policies"]
    assert objects["Service", "edgepolicy-bundles"]["spec"]["ports"][0]["port"] == 8080


def test_a_changed_opa_config_rolls_the_pods() -> None:
    def checksum(*values: str) -> str:
        deployment = render(*values)["Deployment", "edgepolicy-webhook"]
        annotation: str = deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/opa-config"
        ]
        return annotation

    assert checksum() != checksum(*SOURCES["http"])


def test_signing_key_creates_the_verification_configmap() -> None:
    result = helm(
        "template", "edgepolicy", str(CHART), "--namespace", NAMESPACE,
        "--set-file", f"signing.publicKey={KEY_FILE}",
        "--set", "signing.keyId=site-key", "--set", "signing.configMapName=site-key",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    objects = {
        (d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d
    }
    key = objects["ConfigMap", "site-key"]["data"]["bundle-verification.pem"]
    assert key.strip() == PUBLIC_KEY.strip()
    opa = containers(objects)["opa"]
    assert "--set-file=keys.site-key.key=/etc/opa/keys/bundle-verification.pem" in opa["args"]
    assert opa_config(objects)["bundles"]["edgepolicy"]["signing"] == {"keyid": "site-key"}
    volumes = objects["Deployment", "edgepolicy-webhook"]["spec"]["template"]["spec"]["volumes"]
    [mounted] = [v["configMap"]["name"] for v in volumes if v["name"] == "bundle-verification-key"]
    assert mounted == "site-key"


def test_images_by_digest_keep_the_tag_as_a_comment() -> None:
    text = render_text(f"image.digest={DIGEST}", f"opa.image.digest={DIGEST}")
    assert f"image: ghcr.io/apexlogic/edgepolicy@{DIGEST}  # 0.1.0\n" in text
    assert f"image: openpolicyagent/opa@{DIGEST}  # 1.22.3\n" in text
    objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
    assert containers(objects)["opa"]["image"] == f"openpolicyagent/opa@{DIGEST}"


def test_without_cert_manager_the_ca_bundle_is_set_and_no_certificate_rendered() -> None:
    objects = render("certManager.enabled=false", "tls.caBundle=Q0EgUEVN")
    assert not [kind for kind, _ in objects if kind in ("Certificate", "Issuer")]
    for hook in webhooks(objects):
        assert hook["clientConfig"]["caBundle"] == "Q0EgUEVN"


def test_crds_are_rendered_with_include_crds_only() -> None:
    assert "kind: CustomResourceDefinition" not in render_text()
    assert render_text(extra=["--include-crds"]).count("kind: CustomResourceDefinition") == 2


def test_notes_name_the_namespace_and_the_missing_key() -> None:
    result = helm("install", "edgepolicy", str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/edgepolicy-webhook" in notes
    assert "create configmap edgepolicy-bundle-verification-key" in notes
