"""The chart's OPA sidecar as rendered, run for real: the ConfigMap's config.yaml and the
container's arguments (paths moved to a temporary directory) start the pinned OPA, which pulls a
bundle signed by `edgepolicy bundle build` from `edgepolicy bundle serve` and becomes ready on the
chart's readiness probe only when the signature verifies with the key the chart was given."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "bundles")]

from edgepolicy.bundles.signing import SigningKey  # noqa: E402
from policyrepo import PolicyRepo, finops_policy, write_key  # noqa: E402
from registry_support import Registry, TokenService  # noqa: E402

from bench.bundles_sidecars import BundleService, free_port, wait_until  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "edgepolicy"
HELM = ROOT / ".tools" / "bin" / "helm"
KEY_ID = "site-key"


class ChartSidecar:
    """The chart's `opa` container for given values, as a local process."""

    def __init__(
        self, workdir: Path, values: list[str], public_key: Path, token: str | None = None
    ) -> None:
        """``token`` is the content of the bearer token Secret (bundle.bearerTokenSecret)."""
        if not HELM.exists():
            pytest.fail(
                f"{HELM} missing: build it with `make tools` (scripts/install-tools.sh helm)"
            )
        rendered = subprocess.run(
            [str(HELM), "template", "edgepolicy", str(CHART), "--namespace", "edgepolicy-system",
             "--set-file", f"signing.publicKey={public_key}",
             *[arg for value in values for arg in ("--set", value)]],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
        config = objects["ConfigMap", "edgepolicy-opa-config"]["data"]["config.yaml"]
        key = objects["ConfigMap", KEY_ID]["data"]["bundle-verification.pem"]
        pod = objects["Deployment", "edgepolicy-webhook"]["spec"]["template"]["spec"]
        [opa] = [c for c in pod["containers"] if c["name"] == "opa"]
        self.readiness = opa["readinessProbe"]["httpGet"]["path"]

        files = [("config", "config.yaml", config.replace("/etc/opa/", f"{workdir}/")),
                 ("keys", "bundle-verification.pem", key)]  # fmt: skip
        if token is not None:
            files.append(("credentials", "token", token))
        for directory, name, content in files:
            (workdir / directory).mkdir(parents=True)
            (workdir / directory / name).write_text(content)
        self.diagnostic = f"http://127.0.0.1:{free_port()}"
        moved = {
            "--addr=127.0.0.1:8181": f"--addr=127.0.0.1:{free_port()}",
            "--diagnostic-addr=0.0.0.0:8282": f"--diagnostic-addr={self.diagnostic[7:]}",
        }
        args = [moved.get(arg, arg).replace("/etc/opa/", f"{workdir}/") for arg in opa["args"]]
        self.log = workdir / "opa.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(find_opa()), *args, "--set", f"persistence_directory={workdir}/persisted"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(lambda: self._status(self.diagnostic + "/health") == 200, 30, "OPA health")

    def _status(self, url: str) -> int | None:
        if self.process.poll() is not None:
            raise AssertionError(f"OPA exited:\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def ready(self) -> bool:
        """What the chart's readiness probe sees."""
        return self._status(self.diagnostic + self.readiness) == 200

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def served_bundle(tmp_path: Path) -> Iterator[tuple[str, SigningKey]]:
    """A signed bundle of a one-policy repository on `edgepolicy bundle serve`; its URL and key."""
    repo = PolicyRepo(tmp_path / "policies")
    repo.write("teams/ai/cost.yaml", finops_policy())
    repo.commit("a policy")
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
    key_file = write_key(tmp_path / "signing.pem", key.key)
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(
        [sys.executable, "-m", "edgepolicy", "bundle", "build", "--repo", str(repo.path),
         "--out", str(served / "edgepolicy.tar.gz"), "--signing-key", str(key_file),
         "--key-id", KEY_ID],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    service = BundleService(served, tmp_path / "serve.log").start()
    try:
        yield service.url, key
    finally:
        service.stop()


def _values(url: str) -> list[str]:
    return [
        "bundle.source=http",
        f"bundle.http.url={url}",
        f"signing.keyId={KEY_ID}",
        f"signing.configMapName={KEY_ID}",
        "bundle.polling.minDelaySeconds=1",
        "bundle.polling.maxDelaySeconds=2",
    ]


def _public_key_file(path: Path, key: Any) -> Path:
    path.write_text(key.public_pem())
    return path


def test_the_rendered_sidecar_activates_the_signed_bundle(
    tmp_path: Path, served_bundle: tuple[str, SigningKey]
) -> None:
    url, key = served_bundle
    public_key = _public_key_file(tmp_path / "bundle-signing.pub", key)
    sidecar = ChartSidecar(tmp_path / "opa", _values(url), public_key)
    try:
        wait_until(sidecar.ready, 30, "the sidecar's readiness probe")
    finally:
        sidecar.stop()


def test_the_rendered_sidecar_never_gets_ready_with_another_key(
    tmp_path: Path, served_bundle: tuple[str, SigningKey]
) -> None:
    url, _ = served_bundle
    other = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
    public_key = _public_key_file(tmp_path / "other.pub", other)
    sidecar = ChartSidecar(tmp_path / "opa", _values(url), public_key)
    try:
        with pytest.raises(TimeoutError):
            wait_until(sidecar.ready, 8, "the sidecar's readiness probe")
        assert "failed to verify JWT signature" in sidecar.log.read_text()
    finally:
        sidecar.stop()


def test_the_rendered_oci_configuration_is_accepted_by_opa(tmp_path: Path) -> None:
    # OPA starts with the chart's `type: oci` service and tries the registry (none listens here;
    # pulling from a real registry is the OCI publishing tests' part).
    registry = f"127.0.0.1:{free_port()}"
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
    values = [
        "bundle.source=oci",
        f"bundle.oci.registry=http://{registry}",
        f"bundle.oci.reference={registry}/platform/edgepolicy-bundle:1.0.0",
        f"signing.keyId={KEY_ID}",
        f"signing.configMapName={KEY_ID}",
    ]
    public_key = _public_key_file(tmp_path / "bundle-signing.pub", key)
    sidecar = ChartSidecar(tmp_path / "opa", values, public_key)
    try:
        pull = f"failed to pull {registry}/platform/edgepolicy-bundle:1.0.0"  # the OCI downloader
        wait_until(lambda: pull in sidecar.log.read_text(), 20, "a pull from the registry")
        assert not sidecar.ready()
    finally:
        sidecar.stop()


def test_the_rendered_oci_sidecar_pulls_with_the_credentials_secret(tmp_path: Path) -> None:
    # The Secret holds user:password; OPA's `type: oci` service base64-encodes the token itself,
    # so only `scheme: Basic` makes a valid Authorization header (docs/bundles.md).
    tokens = TokenService("site", "s3cret-pull-pass").start()
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry", tokens).start()
    try:
        repo = PolicyRepo(tmp_path / "policies")
        repo.write("teams/ai/cost.yaml", finops_policy())
        repo.commit("a policy")
        key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
        key_file = write_key(tmp_path / "signing.pem", key.key)
        bundle = tmp_path / "edgepolicy.tar.gz"
        (tmp_path / "password").write_text("s3cret-pull-pass\n")
        reference = f"{registry.host}/platform/edgepolicy-bundle:1.0.0"
        for command in (
            ["build", "--repo", str(repo.path), "--out", str(bundle),
             "--signing-key", str(key_file), "--key-id", KEY_ID],
            ["publish", str(bundle), "--to", f"oci://{reference}", "--username", "site",
             "--password-file", str(tmp_path / "password")],
        ):  # fmt: skip
            subprocess.run([sys.executable, "-m", "edgepolicy", "bundle", *command],
                           check=True, capture_output=True, timeout=120)  # fmt: skip
        values = [
            "bundle.source=oci",
            f"bundle.oci.registry={registry.url}",
            f"bundle.oci.reference={reference}",
            "bundle.bearerTokenSecret=registry-credentials",
            f"signing.keyId={KEY_ID}",
            f"signing.configMapName={KEY_ID}",
            "bundle.polling.minDelaySeconds=1",
            "bundle.polling.maxDelaySeconds=2",
        ]
        public_key = _public_key_file(tmp_path / "bundle-signing.pub", key)
        sidecar = ChartSidecar(tmp_path / "opa", values, public_key, token="site:s3cret-pull-pass")
        try:
            wait_until(sidecar.ready, 30, "the sidecar's readiness probe")
        finally:
            sidecar.stop()
        assert tokens.requests[-1]["authorized"] is True
    finally:
        registry.stop()
        tokens.stop()
