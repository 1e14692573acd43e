"""The optional in-cluster bundle service (deploy/components/bundle-service) and publishing to it.

CI publishes a signed bundle into the ConfigMap the bundle service serves from, with
`edgepolicy bundle publish --to configmap:...`, as a ServiceAccount holding only the shipped
`edgepolicy-bundle-publisher` Role, through the real API server.
"""

from __future__ import annotations

import base64
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from e2e_support import (
    ASSETS,
    EDGEPOLICY,
    ROOT,
    SEED_POLICY,
    Kubectl,
    SignedBundle,
    build_signed_bundle,
    controlplane,
    eventually,
    token_kubeconfig,
)

pytestmark = pytest.mark.e2e

NAMESPACE = "edgepolicy-system"
CONFIGMAP = "edgepolicy-bundle"
TARGET = f"configmap:{NAMESPACE}/{CONFIGMAP}"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> SignedBundle:
    work = tmp_path_factory.mktemp("publish")
    files = {"edge-ai-inference-cost-policy.yaml": SEED_POLICY.read_bytes()}
    return build_signed_bundle(work, files, work / "edgepolicy.tar.gz")


@pytest.fixture(scope="module")
def publisher_rbac(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    kubectl.run("apply", "-f", str(ROOT / "deploy/components/bundle-service/rbac.yaml"), check=True)


def service_account_kubeconfig(kubectl: Kubectl, name: str, directory: Path) -> Path:
    """Create ServiceAccount ``name`` and a kubeconfig that authenticates with its token."""
    kubectl.run("create", "serviceaccount", name, "-n", NAMESPACE, check=True)
    return token_kubeconfig(kubectl, NAMESPACE, name, directory)


def publish(bundle: SignedBundle, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGEPOLICY), "bundle", "publish", str(bundle.path), "--to", TARGET,
         "--kubeconfig", str(kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_base_with_the_component_is_accepted_by_server_dry_run(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)

    result = kubectl.run("apply", "--dry-run=server", "-k", str(ASSETS / "bundle-service-overlay"))

    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # restricted Pod Security holds
    for name in (
        "deployment.apps/edgepolicy-bundles",
        "service/edgepolicy-bundles",
        "role.rbac.authorization.k8s.io/edgepolicy-bundle-publisher",
        "deployment.apps/edgepolicy-webhook",
    ):
        assert f"{name} created (server dry run)" in result.stdout, result.stdout


def test_ci_with_the_publisher_role_creates_then_replaces_the_bundle(
    kubectl: Kubectl, publisher_rbac: None, bundle: SignedBundle, tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(kubectl, "policy-ci", tmp_path)
    kubectl.run(
        "create", "rolebinding", "policy-ci", "-n", NAMESPACE,
        "--role=edgepolicy-bundle-publisher", f"--serviceaccount={NAMESPACE}:policy-ci",
        check=True,
    )  # fmt: skip
    # The next commit of the policy repository: the seed policy with a rule in warn mode.
    work = tmp_path / "next"
    work.mkdir()
    files = {
        "edge-ai-inference-cost-policy.yaml": SEED_POLICY.read_bytes(),
        "edgepolicy-settings.yaml": b"enforcementActions:\n  finops.cpu: warn\n",
    }
    following = build_signed_bundle(work, files, work / "edgepolicy.tar.gz")
    assert following.path.read_bytes() != bundle.path.read_bytes()
    assert following.revision != bundle.revision

    created = publish(bundle, kubeconfig)
    assert created.returncode == 0, created.stderr
    assert _stored(kubectl) == (bundle.path.read_bytes(), bundle.revision)
    replaced = publish(following, kubeconfig)
    assert replaced.returncode == 0, replaced.stderr
    assert _stored(kubectl) == (following.path.read_bytes(), following.revision)


def _stored(kubectl: Kubectl) -> tuple[bytes, str]:
    """The bundle in the ConfigMap and its revision annotation."""
    stored = kubectl.get("configmap", CONFIGMAP, NAMESPACE)
    assert stored is not None
    revision = stored["metadata"]["annotations"]["policy.apexlogic.com/bundle-revision"]
    return base64.b64decode(stored["binaryData"]["bundle.tar.gz"]), revision


def test_ci_without_the_role_is_refused_clearly(
    kubectl: Kubectl, publisher_rbac: None, bundle: SignedBundle, tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(kubectl, "stranger", tmp_path)

    result = publish(bundle, kubeconfig)

    assert result.returncode != 0
    assert "HTTP 403" in result.stderr, result.stderr
    assert f"{NAMESPACE}/{CONFIGMAP}" in result.stderr
    assert "Traceback" not in result.stderr


def _kubelet_configmap_update(volume: Path, version: str, files: dict[str, bytes]) -> None:
    """Write ``files`` into ``volume`` the way kubelet updates a ConfigMap volume.

    Kubelet's atomic writer puts the data in a timestamped hidden directory, repoints the
    ``..data`` symlink at it with a rename, and exposes each key as a symlink through ``..data``.
    """
    data_dir = volume / f"..{version}"
    data_dir.mkdir()
    for name, content in files.items():
        (data_dir / name).write_bytes(content)
    staging = volume / "..data_tmp"
    staging.symlink_to(data_dir.name)
    staging.rename(volume / "..data")
    for name in files:
        link = volume / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def test_bundle_serve_follows_a_configmap_volume_update(
    bundle: SignedBundle, tmp_path: Path
) -> None:
    volume = tmp_path / "bundles"
    volume.mkdir()
    _kubelet_configmap_update(volume, "v1", {"edgepolicy.tar.gz": b"first"})
    port = controlplane.free_port()
    server = subprocess.Popen(
        [str(EDGEPOLICY), "bundle", "serve", "--dir", str(volume), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/edgepolicy.tar.gz"
    try:
        assert eventually(lambda: _body(url)) == b"first"

        _kubelet_configmap_update(volume, "v2", {"edgepolicy.tar.gz": bundle.path.read_bytes()})

        assert eventually(lambda: _changed(url, b"first")) == bundle.path.read_bytes()
        assert _body(f"http://127.0.0.1:{port}/..data/edgepolicy.tar.gz") is None  # hidden
    finally:
        server.terminate()
        server.wait(timeout=10)


def _body(url: str) -> bytes | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        assert error.code == 404, error.code
        return None
    except OSError as error:
        raise AssertionError(f"{url}: {error}") from error


def _changed(url: str, old: bytes) -> bytes | None:
    body = _body(url)
    assert body != old
    return body
