"""Session fixtures for the end-to-end tests: a real control plane and webhook certificates.

The control plane is started once per session with ``scripts/controlplane.sh`` (etcd +
kube-apiserver on loopback, state in a temporary directory), gets the FinOpsPolicy and
ModelPolicy CRDs from deploy/, and is stopped at the end. Helpers live in e2e_support.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from e2e_support import BIN, ROOT, Kubectl, WebhookTls, make_webhook_tls

REQUIRED_TOOLS = ("etcd", "kube-apiserver", "kubectl", "opa")


@pytest.fixture(scope="session")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """A fresh control plane for the session (with the policy CRDs), driven by `kubectl`."""
    missing = [name for name in REQUIRED_TOOLS if not (BIN / name).exists()]
    if missing:
        pytest.fail(
            f"e2e tools missing from {BIN}: {', '.join(missing)}; "
            "build them with `make tools-e2e` (scripts/install-tools.sh opa k8s etcd)"
        )
    run_dir = tmp_path_factory.mktemp("controlplane")
    script = [str(ROOT / "scripts" / "controlplane.sh"), "--dir", str(run_dir)]
    started = subprocess.run([*script, "start"], capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        pytest.fail(f"the control plane did not start:\n{started.stderr}")
    try:
        client = Kubectl(run_dir / "kubeconfig")
        client.run("apply", "-f", str(ROOT / "deploy/base/crds"), check=True)
        client.run(
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            "crd/finopspolicies.policy.apexlogic.com",
            "crd/modelpolicies.policy.apexlogic.com",
            check=True,
        )
        yield client
    finally:
        subprocess.run([*script, "stop"], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def webhook_tls(tmp_path_factory: pytest.TempPathFactory) -> WebhookTls:
    """A test CA and a serving certificate for 127.0.0.1 (the CA becomes the caBundle)."""
    return make_webhook_tls(tmp_path_factory.mktemp("webhook-tls"))
