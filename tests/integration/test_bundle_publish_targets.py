"""Publishing to real services: `bundle serve` by HTTP PUT, a ConfigMap in a real API server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgepolicy.bundles.configmap import BUNDLE_KEY, MAX_CONFIGMAP_BYTES, REVISION_ANNOTATION  # noqa: E402
from edgepolicy.bundles.layout import manifest_json  # noqa: E402

from bench.bundles_sidecars import BundleService, free_port, wait_until  # noqa: E402
from edgepolicy.bundle_format import tar_gz  # noqa: E402

pytestmark = pytest.mark.integration

BIN = ROOT / ".tools" / "bin"


def _bundle(revision: str, padding: bytes = b"") -> bytes:
    files = {".manifest": json.dumps({"revision": revision}).encode()}
    if padding:
        files["edgepolicy/padding.rego"] = padding
    return tar_gz(files)


def _edgepolicy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgepolicy", *args],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


@pytest.fixture
def upload_service(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-upload-token\n")
    served = tmp_path / "served"
    served.mkdir()
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "edgepolicy", "bundle", "serve", "--dir", str(served),
         "--port", str(port), "--upload-token-file", str(token_file)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    service = BundleService(served, tmp_path / "unused.log", port)
    try:
        wait_until(service._answers, 20, "bundle serve")
        yield service.url, served, token_file
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_publish_over_http_put_to_bundle_serve(
    upload_service: tuple[str, Path, Path], tmp_path: Path
) -> None:
    url, served, token_file = upload_service
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(_bundle("rev-1"))
    target = f"{url}/edge/edgepolicy.tar.gz"

    denied = _edgepolicy("bundle", "publish", str(bundle), "--to", target)
    assert denied.returncode == 2
    assert "HTTP 401" in denied.stderr and "Traceback" not in denied.stderr

    published = _edgepolicy(
        "bundle", "publish", str(bundle), "--to", target, "--token-file", str(token_file)
    )
    assert published.returncode == 0, published.stderr
    assert "(revision rev-1)" in published.stdout
    assert (served / "edge" / "edgepolicy.tar.gz").read_bytes() == bundle.read_bytes()
    assert urllib3.request("GET", target).data == bundle.read_bytes()
    assert "s3cret" not in published.stdout + published.stderr


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    missing = [name for name in ("etcd", "kube-apiserver", "kubectl") if not (BIN / name).exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)} in {BIN}: run `make tools-e2e`")
    run_dir = tmp_path_factory.mktemp("bundle-controlplane")
    script = [str(ROOT / "scripts" / "controlplane.sh"), "--dir", str(run_dir)]
    started = subprocess.run([*script, "start"], capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        pytest.fail(f"the control plane did not start:\n{started.stderr}")
    try:
        yield run_dir / "kubeconfig"
    finally:
        subprocess.run([*script, "stop"], capture_output=True, timeout=60, check=False)


def _kubectl(kubeconfig: Path, *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


def test_publish_into_a_configmap_through_the_api_server(kubeconfig: Path, tmp_path: Path) -> None:
    _kubectl(kubeconfig, "create", "namespace", "opa")
    target = "configmap:opa/edgepolicy-bundle"
    for revision in ("rev-1", "rev-2"):  # created, then replaced
        bundle = tmp_path / f"{revision}.tar.gz"
        bundle.write_bytes(_bundle(revision))
        published = _edgepolicy(
            "bundle", "publish", str(bundle), "--to", target, "--kubeconfig", str(kubeconfig)
        )
        assert published.returncode == 0, published.stderr
        stored = json.loads(_kubectl(kubeconfig, "-n", "opa", "get", "configmap",
                                     "edgepolicy-bundle", "-o", "json"))  # fmt: skip
        assert base64.b64decode(stored["binaryData"][BUNDLE_KEY]) == bundle.read_bytes()
        assert stored["metadata"]["annotations"][REVISION_ANNOTATION] == revision


def test_an_older_bundle_does_not_replace_the_configmap(kubeconfig: Path, tmp_path: Path) -> None:
    target = "configmap:default/rollback"
    times = {"old": 1_767_225_600, "new": 1_767_225_660}
    for name, when in times.items():
        manifest = manifest_json(name * 10, when, "local", commit_time=when)
        (tmp_path / f"{name}.tar.gz").write_bytes(tar_gz({".manifest": manifest}))

    def publish(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return _edgepolicy("bundle", "publish", str(tmp_path / f"{name}.tar.gz"), "--to", target,
                           "--kubeconfig", str(kubeconfig), *extra)  # fmt: skip

    def stored() -> str:
        found = json.loads(_kubectl(kubeconfig, "-n", "default", "get", "configmap", "rollback",
                                    "-o", "json"))  # fmt: skip
        return str(found["metadata"]["annotations"][REVISION_ANNOTATION])

    assert publish("new").returncode == 0
    refused = publish("old")
    assert refused.returncode == 2
    assert "refusing to replace revision newnewnewnewnewnewnewnewnewnew at ConfigMap" in (
        refused.stderr
    )
    assert stored() == "new" * 10
    assert publish("old", "--allow-rollback").returncode == 0
    assert stored() == "old" * 10


def test_a_bundle_too_big_for_a_configmap_is_refused_clearly(
    kubeconfig: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "big.tar.gz"
    bundle.write_bytes(_bundle("big", padding=os.urandom(MAX_CONFIGMAP_BYTES)))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    refused = _edgepolicy("bundle", "publish", str(bundle), "--to", "configmap:opa/big", env=env)
    assert refused.returncode == 2
    assert "a ConfigMap holds at most 1048576 bytes (1 MiB)" in refused.stderr
    missing = subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", "opa", "get", "cm", "big"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode != 0


def test_the_api_server_refusing_is_reported(kubeconfig: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(_bundle("r"))
    refused = _edgepolicy(
        "bundle", "publish", str(bundle), "--to", "configmap:no-such-namespace/x",
        "--kubeconfig", str(kubeconfig),
    )  # fmt: skip
    assert refused.returncode == 2
    assert "Kubernetes API refused ConfigMap no-such-namespace/x: HTTP 404" in refused.stderr
