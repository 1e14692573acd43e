"""Trusted commits and no rollback, end to end: real git, ssh-keygen, `edgepolicy bundle`
processes and a real OPA sidecar verifying the signed bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "bundles")]

from edgepolicy.bundles.atomic_write import write_atomically  # noqa: E402
from edgepolicy.bundles.signing import SigningKey  # noqa: E402
from policyrepo import (  # noqa: E402
    PolicyRepo,
    allowed_signer,
    finops_policy,
    ssh_fingerprint,
    ssh_key,
    write_key,
)

from bench.bundles_sidecars import KEY_ID, RESOURCE, Sidecar, free_port, wait_until  # noqa: E402
from edgepolicy.bundle_format import read_tar_gz, tar_gz  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

pytestmark = pytest.mark.integration
TOKEN = "upload-token-for-the-trust-tests"


def _edgepolicy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgepolicy", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


class Site:
    """A signed-commit policy repository, the bundle service (uploads on) and one sidecar."""

    def __init__(self, tmp: Path, *serve_flags: str) -> None:
        self.tmp = tmp
        self.alice = ssh_key(tmp / "ssh", "alice")
        self.signers = tmp / "allowed_signers"
        self.signers.write_text(allowed_signer("alice@example.com", self.alice))
        self.key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
        self.key_file = write_key(tmp / "signing.pem", self.key.key)
        self.repo = PolicyRepo(tmp / "policies")
        self.served = tmp / "served"
        self.served.mkdir()
        (tmp / "token").write_text(TOKEN)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(tmp / "serve.log", "wb") as log:
            self.service = subprocess.Popen(
                [sys.executable, "-m", "edgepolicy", "bundle", "serve", "--dir", str(self.served),
                 "--port", str(self.port), "--upload-token-file", str(tmp / "token"),
                 *serve_flags],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._answers, 20, "bundle serve")
        self.sidecar = Sidecar(find_opa(), tmp / "opa", self.url, self.key.public_pem())

    def _answers(self) -> bool:
        try:
            urllib3.request("GET", f"{self.url}/", retries=False, timeout=1)
        except urllib3.exceptions.HTTPError:
            return False
        return True

    def commit(self, max_replicas: int, *, signed: bool = True) -> str:
        self.repo.write("teams/ai/cost.yaml", finops_policy(max_replicas=max_replicas))
        return self.repo.commit(f"max {max_replicas}", ssh_key=self.alice if signed else None)

    def build(self, name: str, rev: str = "HEAD") -> subprocess.CompletedProcess[str]:
        return _edgepolicy(
            "bundle", "build", "--repo", str(self.repo.path), "--rev", rev,
            "--out", str(self.tmp / name), "--signing-key", str(self.key_file),
            "--key-id", KEY_ID, "--allowed-signers", str(self.signers),
        )  # fmt: skip

    def publish(self, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return _edgepolicy(
            "bundle", "publish", str(self.tmp / name), "--to", f"{self.url}/{RESOURCE}",
            "--token-file", str(self.tmp / "token"), *extra,
        )  # fmt: skip

    def metadata(self) -> object:
        url = f"{self.sidecar.url}/v1/data/system/bundles/edgepolicy/manifest/metadata"
        return json.loads(urllib3.request("GET", url).data)["result"]

    def close(self) -> None:
        self.sidecar.stop()
        self.service.terminate()
        self.service.wait(10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site = Site(tmp_path)
    try:
        yield site
    finally:
        site.close()


def _rejected(sidecar: Sidecar, error: str) -> bool:
    status = sidecar.status()
    return error in status.get("message", "") + json.dumps(status.get("errors", []))


def test_the_sidecar_shows_who_signed_the_commit_it_enforces(site: Site) -> None:
    first = site.commit(3)
    built = site.build("first.tar.gz")
    assert built.returncode == 0, built.stderr
    assert "commit signed by alice@example.com" in built.stdout
    assert site.publish("first.tar.gz").returncode == 0
    site.sidecar.start().wait_for_revision(first)
    assert site.metadata() == {
        "commit": first,
        "author_time": "2026-01-01T00:01:00Z",
        "commit_time": "2026-01-01T00:01:00Z",
        "source": "local",
        "signer": {
            "format": "ssh",
            "fingerprint": ssh_fingerprint(site.alice),
            "principal": "alice@example.com",
        },
    }
    # the signer is covered by the bundle signature: claiming another one is rejected
    files = read_tar_gz((site.tmp / "first.tar.gz").read_bytes(), source="first")
    forged = files[".manifest"].replace(b"alice@example.com", b"root@example.com")
    write_atomically(site.served / RESOURCE, tar_gz({**files, ".manifest": forged}))
    wait_until(partial(_rejected, site.sidecar, "digest mismatch"), 15, "the forged signer")
    assert site.sidecar.revision() == first

    unsigned = site.commit(300, signed=False)
    refused = site.build("unsigned.tar.gz")
    assert refused.returncode == 2
    assert f"untrusted commit {unsigned} by Policy Author <author@example.com>: unsigned" in (
        refused.stderr
    )
    assert not (site.tmp / "unsigned.tar.gz").exists()


def test_an_older_signed_bundle_is_not_replayed(site: Site) -> None:
    first = site.commit(3)
    assert site.build("first.tar.gz").returncode == 0
    second = site.commit(10)
    assert site.build("second.tar.gz").returncode == 0
    assert site.publish("second.tar.gz").returncode == 0
    site.sidecar.start().wait_for_revision(second)

    replay = site.publish("first.tar.gz")  # the publisher reads what is served first
    assert replay.returncode == 2
    assert f"by revision {first}: it was committed at" in replay.stderr
    replay = site.publish("first.tar.gz", "--repo", str(site.repo.path))
    assert replay.returncode == 2 and f"it is an ancestor of {second}" in replay.stderr
    # a publisher's --allow-rollback skips its own check, but the service still refuses:
    # only the service's operator can allow rollbacks there (bundle serve --allow-rollback)
    forced = site.publish("first.tar.gz", "--allow-rollback")
    assert forced.returncode == 2 and "HTTP 409 refusing to replace" in forced.stderr
    assert site.sidecar.revision() == second

    site.repo.revert(second)  # a revert is a new commit; sign it like any other
    site.repo.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={site.alice}",
                  "commit", "--quiet", "--amend", "--no-edit", "-S")  # fmt: skip
    revert = site.repo.git("rev-parse", "HEAD")
    assert site.build("revert.tar.gz").returncode == 0
    published = site.publish("revert.tar.gz", "--repo", str(site.repo.path))
    assert published.returncode == 0, published.stderr
    site.sidecar.wait_for_revision(revert, timeout=10)


def test_the_service_operator_can_allow_rollbacks(tmp_path: Path) -> None:
    site = Site(tmp_path, "--allow-rollback")
    try:
        first = site.commit(3)
        assert site.build("first.tar.gz").returncode == 0
        second = site.commit(10)
        assert site.build("second.tar.gz").returncode == 0
        assert site.publish("second.tar.gz").returncode == 0
        site.sidecar.start().wait_for_revision(second)
        assert site.publish("first.tar.gz").returncode == 2  # the publisher still checks
        rolled_back = site.publish("first.tar.gz", "--allow-rollback")
        assert rolled_back.returncode == 0, rolled_back.stderr
        site.sidecar.wait_for_revision(first, timeout=10)
    finally:
        site.close()
