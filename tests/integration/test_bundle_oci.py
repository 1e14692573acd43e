"""Bundles through a real OCI registry (CNCF distribution) to a real OPA sidecar (`type: oci`).

Real processes only: ``git``, ``edgepolicy bundle build|publish|pull``, ``registry serve``
(anonymous, and behind Docker token authentication with a token service on loopback) and
``opa run --server`` pulling the signed bundle by tag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "bundles")]

from edgepolicy.bundles.signing import SigningKey  # noqa: E402
from policyrepo import PolicyRepo, finops_policy, write_key  # noqa: E402
from registry_support import Registry, TokenService  # noqa: E402
from webhook_support import ServerCert, TestCA  # noqa: E402

from bench.bundles_sidecars import KEY_ID, Sidecar, wait_until  # noqa: E402
from edgepolicy.bundle_format import read_tar_gz, tar_gz  # noqa: E402
from edgepolicy.input_builder import admission_review, decision_input  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

pytestmark = pytest.mark.integration

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _edgepolicy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgepolicy", *args],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


def _deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "ai-inference-service", "env": "production-edge"}
    container = {"name": "server", "image": "registry.example.com/inference:1.0",
                 "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "inference", "namespace": "ai-workloads"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
    }  # fmt: skip


def _rules(sidecar: Sidecar, replicas: int) -> list[str]:
    decision = sidecar.decide(decision_input(admission_review(_deployment(replicas), uid="u")))
    return sorted(finding["rule"] for finding in decision["violations"])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("registry")).start()
    try:
        yield registry
    finally:
        registry.stop()


class Policies:
    """A policy repository with an ES256 signing key, built into bundles by the CLI."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
        self.key_file = write_key(tmp / "signing.pem", self.key.key)
        self.repo = PolicyRepo(tmp / "policies")

    def commit(self, max_replicas: int) -> str:
        self.repo.write("teams/ai/cost.yaml", finops_policy(max_replicas=max_replicas))
        return self.repo.commit(f"max {max_replicas} replicas")

    def build(self, name: str, *, signed: bool = True) -> Path:
        out = self.tmp / name
        args = ["bundle", "build", "--repo", str(self.repo.path), "--out", str(out)]
        if signed:
            args += ["--signing-key", str(self.key_file), "--key-id", KEY_ID]
        built = _edgepolicy(*args)
        assert built.returncode == 0, built.stderr
        return out


@pytest.fixture
def policies(tmp_path: Path) -> Policies:
    return Policies(tmp_path)


def _publish(bundle: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return _edgepolicy("bundle", "publish", str(bundle), "--to", ref, *extra)


def test_a_signed_bundle_goes_to_the_registry_and_comes_back_identical(
    registry: Registry, policies: Policies, tmp_path: Path
) -> None:
    revision = policies.commit(3)
    bundle = policies.build("signed.tar.gz")
    ref = f"oci://{registry.host}/edge/policies:v1"
    published = _publish(bundle, ref)
    assert published.returncode == 0, published.stderr
    archive = bundle.read_bytes()

    http = urllib3.PoolManager()
    answer = http.request(
        "GET", f"{registry.url}/v2/edge/policies/manifests/v1", headers={"Accept": MANIFEST_TYPE}
    )
    assert answer.status == 200
    manifest_digest = "sha256:" + hashlib.sha256(answer.data).hexdigest()
    assert answer.headers["Docker-Content-Digest"] == manifest_digest
    assert published.stdout.strip() == f"published {ref}@{manifest_digest} (revision {revision})"
    manifest = json.loads(answer.data)
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layer["digest"] == "sha256:" + hashlib.sha256(archive).hexdigest()
    assert layer["size"] == len(archive)
    assert manifest["annotations"]["org.opencontainers.image.revision"] == revision
    blob = http.request("GET", f"{registry.url}/v2/edge/policies/blobs/{layer['digest']}")
    assert blob.data == archive

    out = tmp_path / "pulled" / "bundle.tar.gz"
    pulled = _edgepolicy("bundle", "pull", ref, "-o", str(out))
    assert pulled.returncode == 0, pulled.stderr
    assert out.read_bytes() == archive
    assert pulled.stdout.strip() == (
        f"pulled {ref}@{manifest_digest} to {out} (revision {revision})"
    )
    by_digest = _edgepolicy("bundle", "pull", f"oci://{registry.host}/edge/policies@{manifest_digest}",
                            "-o", str(tmp_path / "pinned.tar.gz"))  # fmt: skip
    assert by_digest.returncode == 0, by_digest.stderr
    assert (tmp_path / "pinned.tar.gz").read_bytes() == archive

    again = _publish(bundle, ref, "--plain-http")  # idempotent: same manifest digest
    assert again.returncode == 0, again.stderr
    assert f"@{manifest_digest} " in again.stdout

    missing = _edgepolicy("bundle", "pull", f"oci://{registry.host}/edge/policies:nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"edgepolicy: error: oci://{registry.host}/edge/policies:nope: not found in the "
        "registry (HTTP 404)"
    )


def test_an_older_bundle_does_not_replace_the_tag(
    registry: Registry, policies: Policies, tmp_path: Path
) -> None:
    old = policies.commit(3)
    old_bundle = policies.build("old.tar.gz")
    new = policies.commit(10)
    new_bundle = policies.build("new.tar.gz")
    ref = f"oci://{registry.host}/edge/rollback:prod"
    assert _publish(new_bundle, ref).returncode == 0

    refused = _publish(old_bundle, ref, "--repo", str(policies.repo.path))
    assert refused.returncode == 2
    assert (
        f"refusing to replace revision {new} at {ref} by revision {old}: it is an ancestor of "
        f"{new}, so that would roll the policy back" in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    pulled = tmp_path / "now.tar.gz"
    assert _edgepolicy("bundle", "pull", ref, "-o", str(pulled)).returncode == 0
    assert pulled.read_bytes() == new_bundle.read_bytes()

    by_time = _publish(old_bundle, ref)  # no repository here: the recorded commit times decide
    assert by_time.returncode == 2 and "refusing to replace revision" in by_time.stderr

    forced = _publish(old_bundle, ref, "--allow-rollback")
    assert forced.returncode == 0, forced.stderr
    assert _edgepolicy("bundle", "pull", ref, "-o", str(pulled)).returncode == 0
    assert pulled.read_bytes() == old_bundle.read_bytes()


def _rejected(sidecar: Sidecar, error: str) -> bool:
    status = sidecar.status()
    return error in status.get("message", "") + json.dumps(status.get("errors", []))


def test_an_opa_sidecar_pulls_the_signed_bundle_by_tag_and_refuses_tampering(
    registry: Registry, policies: Policies
) -> None:
    first = policies.commit(3)
    ref = f"oci://{registry.host}/edge/sidecar:stable"
    assert _publish(policies.build("first.tar.gz"), ref).returncode == 0
    sidecar = Sidecar(
        find_opa(), policies.tmp / "opa", registry.url, policies.key.public_pem(),
        long_polling=False, service_type="oci", resource=f"{registry.host}/edge/sidecar:stable",
    )  # fmt: skip
    try:
        sidecar.start().wait_for_revision(first, timeout=60)
        assert sidecar.status()["active_revision"] == first
        health = urllib3.request("GET", f"{sidecar.url}/health?bundles=true")
        assert health.status == 200
        assert _rules(sidecar, 5) == ["finops.replicas"]
        assert _rules(sidecar, 2) == []

        second = policies.commit(10)  # a new revision under the same tag
        second_bundle = policies.build("second.tar.gz")
        assert _publish(second_bundle, ref).returncode == 0
        sidecar.wait_for_revision(second, timeout=30)
        assert _rules(sidecar, 5) == []

        files = read_tar_gz(second_bundle.read_bytes(), source="second")
        data = json.loads(files["edgepolicy/policies/data.json"])
        policy = data["finops"]["ai-workloads"]["edge-ai-inference-cost-policy"]
        policy["spec"]["autoScale"]["maxReplicas"] = 100
        tampered = policies.tmp / "tampered.tar.gz"
        tampered.write_bytes(
            tar_gz({**files, "edgepolicy/policies/data.json": json.dumps(data).encode()})
        )
        policies.commit(100)
        unsigned = policies.build("unsigned.tar.gz", signed=False)
        for label, bundle, error in [
            ("tampered", tampered, "digest mismatch"),
            ("unsigned", unsigned, "missing .signatures.json"),
        ]:
            assert _publish(bundle, ref).returncode == 0, label
            wait_until(partial(_rejected, sidecar, error), 30, f"the sidecar to refuse {label}")
            assert sidecar.revision() == second, label
            assert _rules(sidecar, 5) == [], label
            assert _rules(sidecar, 11) == ["finops.replicas"], label
    finally:
        sidecar.stop()


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenService]]:
    tokens = TokenService("ci", "s3cret-registry-pass").start()
    registry = Registry(tmp_path_factory.mktemp("token-registry"), tokens).start()
    try:
        yield registry, tokens
    finally:
        registry.stop()
        tokens.stop()


def test_the_token_flow_with_flags_and_with_the_docker_configuration(
    token_registry: tuple[Registry, TokenService], policies: Policies, tmp_path: Path
) -> None:
    registry, tokens = token_registry
    revision = policies.commit(3)
    bundle = policies.build("b.tar.gz")
    ref = f"oci://{registry.host}/edge/private:v1"
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker")}

    anonymous = _edgepolicy("bundle", "publish", str(bundle), "--to", ref, env=env)
    assert anonymous.returncode == 2
    assert f"edgepolicy: error: {ref}: token service {tokens.realm} refused " in anonymous.stderr
    assert "HTTP 401" in anonymous.stderr and "(credentials: anonymous)" in anonymous.stderr

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    refused = _edgepolicy("bundle", "publish", str(bundle), "--to", ref, "--username", "ci",
                          "--password-file", str(wrong), env=env)  # fmt: skip
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr
    assert "not-the-password" not in refused.stdout + refused.stderr

    password = tmp_path / "password"
    password.write_text("s3cret-registry-pass\n")
    published = _edgepolicy("bundle", "publish", str(bundle), "--to", ref, "--username", "ci",
                            "--password-file", str(password), env=env)  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert f"(revision {revision})" in published.stdout
    assert tokens.requests[-1] == {
        "scope": "repository:edge/private:pull,push", "service": "edgepolicy-test-registry",
        "authorized": True,
    }  # fmt: skip

    (tmp_path / "docker").mkdir()
    auth = base64.b64encode(b"ci:s3cret-registry-pass").decode()
    (tmp_path / "docker" / "config.json").write_text(
        json.dumps({"auths": {registry.host: {"auth": auth}}})
    )
    out = tmp_path / "pulled.tar.gz"
    pulled = _edgepolicy("bundle", "pull", ref, "-o", str(out), env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert out.read_bytes() == bundle.read_bytes()
    assert tokens.requests[-1]["scope"] == "repository:edge/private:pull"
    (tmp_path / "docker" / "config.json").write_text(
        json.dumps({"auths": {registry.host: {"identitytoken": tokens.refresh}}})
    )
    refreshed = _edgepolicy("bundle", "pull", ref, "-o", str(out), env=env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert tokens.requests[-1] == {
        "scope": "repository:edge/private:pull",
        "grant": "refresh_token",
    }
    for result in (anonymous, refused, published, pulled, refreshed):
        assert "s3cret" not in result.stdout + result.stderr
        assert tokens.refresh not in result.stdout + result.stderr

    auth_file = tmp_path / "opa-registry-auth"
    auth_file.write_text("ci:s3cret-registry-pass\n")
    sidecar = Sidecar(
        find_opa(), tmp_path / "opa", registry.url, policies.key.public_pem(),
        long_polling=False, service_type="oci", resource=ref.removeprefix("oci://"),
    )  # fmt: skip
    service = sidecar.config["services"]["bundles"]
    service["credentials"] = {"bearer": {"scheme": "Basic", "token_path": str(auth_file)}}
    try:
        sidecar.start().wait_for_revision(revision, timeout=60)
        assert _rules(sidecar, 5) == ["finops.replicas"]
    finally:
        sidecar.stop()


def test_bundle_watch_publishes_each_new_commit_to_the_tag(
    registry: Registry, policies: Policies, tmp_path: Path
) -> None:
    ref = f"oci://{registry.host}/edge/watched:main"
    out = tmp_path / "pulled.tar.gz"
    for max_replicas in (3, 10):
        head = policies.commit(max_replicas)
        watched = _edgepolicy(
            "bundle", "watch", "--repo", str(policies.repo.path), "--branch", "main", "--once",
            "--to", ref, "--signing-key", str(policies.key_file), "--key-id", KEY_ID,
            "--workdir", str(tmp_path / "watch"),
        )  # fmt: skip
        assert watched.returncode == 0, watched.stderr
        assert f"published {ref}@sha256:" in watched.stdout
        assert _edgepolicy("bundle", "pull", ref, "-o", str(out)).returncode == 0
        manifest = json.loads(read_tar_gz(out.read_bytes(), source="pulled")[".manifest"])
        assert manifest["revision"] == head


def test_a_registry_behind_tls_with_a_private_ca(
    policies: Policies, tmp_path: Path, server_cert: ServerCert, test_ca: TestCA
) -> None:
    registry = Registry(
        tmp_path / "tls-registry",
        tls=(server_cert.cert_file, server_cert.key_file, test_ca.cert_file),
    ).start()
    try:
        revision = policies.commit(3)
        bundle = policies.build("b.tar.gz")
        ref = f"oci://{registry.host}/edge/tls:v1"
        untrusted = _publish(bundle, ref)
        assert untrusted.returncode == 2
        assert f"edgepolicy: error: {ref}: cannot reach registry {registry.host} over HTTPS: " in (
            untrusted.stderr
        )
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr

        published = _publish(bundle, ref, "--ca-file", str(test_ca.cert_file))
        assert published.returncode == 0, published.stderr
        assert f"(revision {revision})" in published.stdout
        out = tmp_path / "pulled.tar.gz"
        pulled = _edgepolicy(
            "bundle", "pull", ref, "--ca-file", str(test_ca.cert_file), "-o", str(out)
        )
        assert pulled.returncode == 0, pulled.stderr
        assert out.read_bytes() == bundle.read_bytes()
    finally:
        registry.stop()
