"""Kubeconfig credentials the real kube-apiserver checks: an exec credential plugin
(tests/assets/fake_credential_plugin.py) returning a ServiceAccount token from the TokenRequest
API or a client certificate signed by the control plane's CA, chosen with --context among the
contexts of one kubeconfig, through the library, `bundle publish` and `serve`."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    EDGEPOLICY,
    ROOT,
    SEED_POLICY,
    Kubectl,
    SignedBundle,
    WebhookTls,
    build_signed_bundle,
    controlplane,
    start_webhook,
    webhook_kubeconfig,
)

from edgepolicy.kube import KubernetesApiError, from_kubeconfig

pytestmark = pytest.mark.e2e

PLUGIN = ROOT / "tests" / "assets" / "fake_credential_plugin.py"
V1 = "client.authentication.k8s.io/v1"
POLICIES = "/apis/policy.apexlogic.com/v1alpha1/namespaces/default/finopspolicies"
NAMESPACE = "edgepolicy-system"
PUBLISH_NAMESPACE = "exec-publish"


class Plugin:
    """The fake plugin's state directory: what it answers, what it saw."""

    def __init__(self, state: Path) -> None:
        state.mkdir()
        self.state = state

    def answer(self, *answers: dict[str, Any]) -> None:
        (self.state / "answers.json").write_text(json.dumps(list(answers)))

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.state.glob("call-*.json"))]


def _token(token: str, expires: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"token": token}
    if expires:
        status["expirationTimestamp"] = expires
    return {"output": {"apiVersion": V1, "kind": "ExecCredential", "status": status}}


def _kubeconfig(kubectl: Kubectl, plugin: Plugin, directory: Path) -> Path:
    """The admin kubeconfig plus a context `exec` whose user runs the plugin (v1, Never)."""
    config = json.loads(kubectl.kubeconfig.read_text())
    cluster = config["clusters"][0]["name"]
    config["users"].append(
        {
            "name": "exec-user",
            "user": {
                "exec": {
                    "apiVersion": V1,
                    "command": str(PLUGIN),
                    "interactiveMode": "Never",
                    "provideClusterInfo": True,
                    "env": [{"name": "PLUGIN_STATE", "value": str(plugin.state)}],
                }
            },
        }
    )
    config["contexts"].append(
        {"name": "exec", "context": {"cluster": cluster, "user": "exec-user"}}
    )
    path = directory / "exec.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _service_account_token(kubectl: Kubectl, name: str) -> str:
    return kubectl.run(
        "create", "token", name, "-n", NAMESPACE, "--duration=1h", check=True
    ).stdout.strip()


@pytest.fixture
def webhook_token(kubectl: Kubectl, tmp_path: Path) -> str:
    """A token of the webhook's ServiceAccount (shipped RBAC: list FinOpsPolicies)."""
    webhook_kubeconfig(kubectl, tmp_path)  # applies deploy/base's namespace and RBAC
    return _service_account_token(kubectl, "edgepolicy-webhook")


def test_an_exec_plugin_token_is_accepted_and_renewed_after_a_401(
    kubectl: Kubectl, webhook_token: str, tmp_path: Path
) -> None:
    plugin = Plugin(tmp_path / "plugin")
    plugin.answer(_token("revoked-or-bogus"), _token(webhook_token))
    api = from_kubeconfig(_kubeconfig(kubectl, plugin, tmp_path), context="exec")

    assert api.get_object(POLICIES, timeout=10) is not None  # 401, plugin again, 200
    assert api.get_object(POLICIES, timeout=10) is not None  # the kept token

    calls = plugin.calls()
    assert len(calls) == 2
    info = json.loads(calls[0]["exec_info"])
    assert info["apiVersion"] == V1 and info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == api.server
    assert info["spec"]["cluster"]["certificate-authority-data"]


def test_an_expired_credential_runs_the_plugin_again(
    kubectl: Kubectl, webhook_token: str, tmp_path: Path
) -> None:
    plugin = Plugin(tmp_path / "plugin")
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)).isoformat()
    plugin.answer(_token(webhook_token, expires=past))
    api = from_kubeconfig(_kubeconfig(kubectl, plugin, tmp_path), context="exec")

    for _ in range(2):
        assert api.get_object(POLICIES, timeout=10) is not None

    assert len(plugin.calls()) == 2


def test_a_plugin_client_certificate_is_presented(kubectl: Kubectl, tmp_path: Path) -> None:
    pki = kubectl.kubeconfig.parent / "controlplane" / "pki"
    ca = controlplane.KeyPair((pki / "ca.key").read_bytes(), (pki / "ca.crt").read_bytes())
    issued = controlplane.issue_cert(
        ca, "exec-cert-user", organization="system:masters", server=False, client=True
    )
    plugin = Plugin(tmp_path / "plugin")
    status = {
        "clientCertificateData": issued.cert_pem.decode(),
        "clientKeyData": issued.key_pem.decode(),
    }
    plugin.answer({"output": {"apiVersion": V1, "kind": "ExecCredential", "status": status}})
    api = from_kubeconfig(_kubeconfig(kubectl, plugin, tmp_path), context="exec")

    assert api.get_object("/api/v1/namespaces/default", timeout=10) is not None


def test_a_refused_plugin_credential_is_an_error_after_one_renewal(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    plugin = Plugin(tmp_path / "plugin")
    plugin.answer(_token("bogus"))
    api = from_kubeconfig(_kubeconfig(kubectl, plugin, tmp_path), context="exec")

    with pytest.raises(KubernetesApiError, match="HTTP 401"):
        api.get_object(POLICIES, timeout=10)
    assert len(plugin.calls()) == 2


@pytest.fixture
def bundle(tmp_path: Path) -> SignedBundle:
    work = tmp_path / "bundle"
    work.mkdir()
    files = {"edge-ai-inference-cost-policy.yaml": SEED_POLICY.read_bytes()}
    return build_signed_bundle(work, files, work / "edgepolicy.tar.gz")


def test_bundle_publish_to_a_configmap_with_an_exec_context(
    kubectl: Kubectl, bundle: SignedBundle, tmp_path: Path
) -> None:
    # A namespace of its own: the shipped publisher Role stays for test_bundle_service.py.
    kubectl.create_namespace(PUBLISH_NAMESPACE)
    kubectl.run(
        "create", "role", "exec-publisher", "-n", PUBLISH_NAMESPACE,
        "--verb=get,create,update", "--resource=configmaps", check=True,
    )  # fmt: skip
    kubectl.run("create", "serviceaccount", "exec-ci", "-n", PUBLISH_NAMESPACE, check=True)
    kubectl.run(
        "create", "rolebinding", "exec-ci", "-n", PUBLISH_NAMESPACE,
        "--role=exec-publisher", f"--serviceaccount={PUBLISH_NAMESPACE}:exec-ci", check=True,
    )  # fmt: skip
    plugin = Plugin(tmp_path / "plugin")
    token = kubectl.run(
        "create", "token", "exec-ci", "-n", PUBLISH_NAMESPACE, "--duration=1h", check=True
    ).stdout.strip()
    plugin.answer(_token(token))
    kubeconfig = _kubeconfig(kubectl, plugin, tmp_path)

    def publish(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EDGEPOLICY), "bundle", "publish", str(bundle.path),
             "--to", f"configmap:{PUBLISH_NAMESPACE}/edgepolicy-bundle", *flags],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    published = publish("--kubeconfig", str(kubeconfig), "--context", "exec")
    unknown = publish("--kubeconfig", str(kubeconfig), "--context", "nope")

    assert published.returncode == 0, published.stderr
    assert len(plugin.calls()) == 1  # the context chosen, not the admin's current-context
    stored = kubectl.get("configmap", "edgepolicy-bundle", PUBLISH_NAMESPACE)
    assert stored is not None
    assert stored["metadata"]["annotations"]["policy.apexlogic.com/bundle-revision"] == (
        bundle.revision
    )
    assert unknown.returncode == 2
    assert "--kubeconfig --context: " in unknown.stderr
    assert "no context named 'nope' (contexts: edgepolicy-local, exec)" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_serve_uses_the_exec_context_and_fails_early_on_a_broken_plugin(
    kubectl: Kubectl, webhook_tls: WebhookTls, webhook_token: str, tmp_path: Path
) -> None:
    plugin = Plugin(tmp_path / "plugin")
    plugin.answer(_token(webhook_token))
    kubeconfig = _kubeconfig(kubectl, plugin, tmp_path)
    webhook = start_webhook(
        webhook_tls,
        tmp_path / "webhook.log",
        args=["--policies", str(SEED_POLICY), "--kubeconfig", str(kubeconfig), "--context", "exec"],
    )
    try:
        assert len(plugin.calls()) >= 1  # credentials obtained at start-up
    finally:
        webhook.stop()

    plugin.answer({"exit": 7})
    broken = subprocess.run(
        [str(EDGEPOLICY), "serve", "--tls-cert", str(webhook_tls.cert_file),
         "--tls-key", str(webhook_tls.key_file), "--port", "1",
         "--kubeconfig", str(kubeconfig), "--context", "exec"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert broken.returncode == 2
    assert "--kubeconfig --context: " in broken.stderr
    assert "of user 'exec-user': exited with status 7" in broken.stderr
    assert "Traceback" not in broken.stderr
