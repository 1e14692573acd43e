"""Bundles from Git to real OPA sidecars (issue 4, "Prove it").

Real processes only: ``git``, ``edgepolicy bundle build|watch|serve`` and several
``opa run --server`` sidecars configured the way an edge cluster runs them (service, signed
bundle with the ES256 verification key, persistence, long polling or plain polling).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "bundles")]

from edgepolicy.bundles.atomic_write import write_atomically  # noqa: E402
from edgepolicy.bundles.signing import SigningKey  # noqa: E402
from policyrepo import PolicyRepo, finops_policy, write_key  # noqa: E402

from bench.bundles_sidecars import (  # noqa: E402
    KEY_ID,
    RESOURCE,
    BundleService,
    Sidecar,
    free_port,
    wait_until,
)
from edgepolicy.bundle_format import read_tar_gz, tar_gz  # noqa: E402
from edgepolicy.input_builder import admission_review, decision_input  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

pytestmark = pytest.mark.integration


def _edgepolicy(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgepolicy", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def _deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "ai-inference-service", "env": "production-edge"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "inference", "namespace": "ai-workloads"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.example.com/inference:1.0",
                            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                        }
                    ]
                },
            },
        },
    }


def _rules(decision: Any) -> list[str]:
    return sorted(finding["rule"] for finding in decision["violations"])


def _rejected(sidecar: Sidecar, error: str) -> bool:
    status = sidecar.status()
    return error in status.get("message", "") + json.dumps(status.get("errors", []))


def _input(replicas: int) -> dict[str, Any]:
    return decision_input(admission_review(_deployment(replicas), uid="fixed"))


class Fleet:
    """A policy repository, signing key, bundle service and sidecars of one test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.opa = find_opa()
        self.key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
        self.key_file = write_key(tmp / "signing.pem", self.key.key)
        self.repo = PolicyRepo(tmp / "policies")
        self.served = tmp / "served"
        self.service = BundleService(self.served, tmp / "serve.log").start()
        self.sidecars: list[Sidecar] = []

    def sidecar(self, **options: Any) -> Sidecar:
        sidecar = Sidecar(
            self.opa,
            self.tmp / f"opa-{len(self.sidecars)}",
            self.service.url,
            self.key.public_pem(),
            **options,
        )
        self.sidecars.append(sidecar)
        return sidecar.start()

    def commit_policy(self, max_replicas: int, message: str) -> str:
        self.repo.write("teams/ai/cost.yaml", finops_policy(max_replicas=max_replicas))
        return self.repo.commit(message)

    def build(self, out: Path, *, signed: bool = True, rev: str = "HEAD") -> Path:
        args = ["bundle", "build", "--repo", str(self.repo.path), "--rev", rev, "--out", str(out)]
        if signed:
            args += ["--signing-key", str(self.key_file), "--key-id", KEY_ID]
        _edgepolicy(*args)
        return out

    def publish(self, bundle: Path) -> None:
        _edgepolicy(
            "bundle", "publish", str(bundle), "--to", f"dir:{self.served}", "--name", RESOURCE
        )

    def close(self) -> None:
        for sidecar in self.sidecars:
            sidecar.stop()
        self.service.stop()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


def test_a_new_commit_reaches_every_sidecar(fleet: Fleet) -> None:
    first = fleet.commit_policy(3, "max 3 replicas")
    fleet.publish(fleet.build(fleet.tmp / "first.tar.gz"))
    sidecars = [fleet.sidecar() for _ in range(3)]
    for sidecar in sidecars:
        sidecar.wait_for_revision(first)
        assert sidecar.status()["active_revision"] == first
        assert _rules(sidecar.decide(_input(5))) == ["finops.replicas"]

    second = fleet.commit_policy(10, "max 10 replicas")
    fleet.publish(fleet.build(fleet.tmp / "second.tar.gz"))
    for sidecar in sidecars:
        sidecar.wait_for_revision(second, timeout=10)
        assert sidecar.status()["active_revision"] == second
        assert sidecar.decide(_input(5))["allowed"] is True


def test_a_rule_rolled_out_in_warn_mode_through_git_warns(fleet: Fleet) -> None:
    denying = fleet.commit_policy(3, "max 3 replicas")
    fleet.publish(fleet.build(fleet.tmp / "deny.tar.gz"))
    sidecar = fleet.sidecar()
    sidecar.wait_for_revision(denying)
    assert _rules(sidecar.decide(_input(5))) == ["finops.replicas"]

    fleet.repo.write(
        "edgepolicy-settings.yaml", {"enforcementActions": {"finops.replicas": "warn"}}
    )
    warning = fleet.repo.commit("finops.replicas in warn mode")
    fleet.publish(fleet.build(fleet.tmp / "warn.tar.gz"))
    sidecar.wait_for_revision(warning, timeout=10)
    decision = sidecar.decide(_input(5))
    assert decision["allowed"] is True
    assert [w["rule"] for w in decision["warnings"]] == ["finops.replicas"]


def test_any_static_web_server_works(fleet: Fleet, tmp_path: Path) -> None:
    revision = fleet.commit_policy(3, "max 3 replicas")
    static_dir = tmp_path / "static"
    static_dir.mkdir()
    fleet.build(static_dir / RESOURCE)
    port = free_port()
    with open(tmp_path / "http.server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
             str(static_dir), str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        sidecar = Sidecar(fleet.opa, tmp_path / "opa-static", f"http://127.0.0.1:{port}",
                          fleet.key.public_pem(), long_polling=False)  # fmt: skip
        fleet.sidecars.append(sidecar)
        sidecar.start().wait_for_revision(revision, timeout=20)
        assert _rules(sidecar.decide(_input(5))) == ["finops.replicas"]
    finally:
        server.terminate()
        server.wait(10)


def test_tampered_unsigned_and_foreign_bundles_are_rejected(fleet: Fleet) -> None:
    good = fleet.commit_policy(3, "max 3 replicas")
    signed = fleet.build(fleet.tmp / "good.tar.gz")
    fleet.publish(signed)
    sidecar = fleet.sidecar()
    sidecar.wait_for_revision(good)

    files = read_tar_gz(signed.read_bytes(), source="good")
    data = json.loads(files["edgepolicy/policies/data.json"])
    data["finops"]["ai-workloads"]["edge-ai-inference-cost-policy"]["spec"]["autoScale"][
        "maxReplicas"
    ] = 100
    tampered = {**files, "edgepolicy/policies/data.json": json.dumps(data).encode()}
    fleet.commit_policy(100, "unsigned")
    unsigned = fleet.build(fleet.tmp / "unsigned.tar.gz", signed=False).read_bytes()
    other_key = write_key(fleet.tmp / "other.pem", ec.generate_private_key(ec.SECP256R1()))
    foreign = fleet.tmp / "foreign.tar.gz"
    _edgepolicy(
        "bundle",
        "build",
        "--repo",
        str(fleet.repo.path),
        "--out",
        str(foreign),
        "--signing-key",
        str(other_key),
        "--key-id",
        KEY_ID,
    )

    for label, archive, error in [
        ("tampered", tar_gz(tampered), "digest mismatch"),
        ("unsigned", unsigned, "missing .signatures.json"),
        ("foreign key", foreign.read_bytes(), "failed to verify"),
    ]:
        write_atomically(fleet.served / RESOURCE, archive)
        wait_until(partial(_rejected, sidecar, error), 15, f"the sidecar to reject the {label}")
        assert sidecar.revision() == good, label
        assert _rules(sidecar.decide(_input(5))) == ["finops.replicas"], label


def test_restarted_sidecar_enforces_the_persisted_bundle_while_the_service_is_down(
    fleet: Fleet,
) -> None:
    revision = fleet.commit_policy(3, "max 3 replicas")
    fleet.publish(fleet.build(fleet.tmp / "b.tar.gz"))
    sidecar = fleet.sidecar()
    sidecar.wait_for_revision(revision)
    sidecar.stop()
    fleet.service.stop()

    sidecar.start()
    sidecar.wait_for_revision(revision, timeout=10)
    assert _rules(sidecar.decide(_input(5))) == ["finops.replicas"]
    assert sidecar.decide(_input(2))["allowed"] is True
    assert "connection refused" in sidecar.status().get("message", "")


def test_a_git_revert_is_enforced_everywhere_after_the_next_publish(fleet: Fleet) -> None:
    def watch_once() -> None:
        _edgepolicy(
            "bundle",
            "watch",
            "--repo",
            str(fleet.repo.path),
            "--branch",
            "main",
            "--once",
            "--to",
            f"dir:{fleet.served}",
            "--name",
            RESOURCE,
            "--signing-key",
            str(fleet.key_file),
            "--key-id",
            KEY_ID,
            "--workdir",
            str(fleet.tmp / "watch"),
        )

    fleet.commit_policy(3, "max 3 replicas")
    watch_once()
    sidecars = [fleet.sidecar() for _ in range(3)]
    loosen = fleet.commit_policy(10, "max 10 replicas")
    watch_once()
    for sidecar in sidecars:
        sidecar.wait_for_revision(loosen, timeout=10)
        assert sidecar.decide(_input(5))["allowed"] is True

    revert = fleet.repo.revert(loosen)
    watch_once()
    for sidecar in sidecars:
        sidecar.wait_for_revision(revert, timeout=10)
        assert _rules(sidecar.decide(_input(5))) == ["finops.replicas"]


def test_a_fleet_of_twenty_sidecars_converges(fleet: Fleet) -> None:
    first = fleet.commit_policy(3, "max 3 replicas")
    fleet.publish(fleet.build(fleet.tmp / "first.tar.gz"))
    sidecars = []
    for _ in range(20):
        sidecars.append(fleet.sidecar())
        time.sleep(0.05)  # stagger start-up on a small machine
    for sidecar in sidecars:
        sidecar.wait_for_revision(first, timeout=60)

    second = fleet.commit_policy(10, "max 10 replicas")
    bundle = fleet.build(fleet.tmp / "second.tar.gz")
    published = time.time()
    fleet.publish(bundle)
    for sidecar in sidecars:
        sidecar.wait_for_revision(second, timeout=60)
    activations = [sidecar.activated_at() for sidecar in sidecars]
    assert all(when is not None and when >= published - 1 for when in activations)
    assert all(sidecar.decide(_input(5))["allowed"] for sidecar in sidecars)


def test_check_with_the_bundle_gives_the_sidecars_verdicts(fleet: Fleet) -> None:
    revision = fleet.commit_policy(3, "max 3 replicas")
    bundle = fleet.build(fleet.tmp / "signed.tar.gz")
    fleet.publish(bundle)
    sidecar = fleet.sidecar()
    sidecar.wait_for_revision(revision)
    public_key = fleet.tmp / "verification.pem"
    public_key.write_text(fleet.key.public_pem())

    manifests = fleet.tmp / "manifests"
    manifests.mkdir()
    for replicas in (1, 3, 4, 9):
        (manifests / f"deploy-{replicas}.json").write_text(json.dumps(_deployment(replicas)))
    result = _edgepolicy(
        "check", "--policy", str(bundle), "--verification-key", str(public_key),
        "--verification-key-id", KEY_ID, "--output", "json", str(manifests), check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    by_file = {Path(r["file"]).name: r for r in report["results"]}
    for replicas in (1, 3, 4, 9):
        cli = by_file[f"deploy-{replicas}.json"]
        opa = sidecar.decide(_input(replicas))
        assert cli["allowed"] == opa["allowed"], replicas
        assert sorted(v["rule"] for v in cli["violations"]) == _rules(opa), replicas
        assert [w["rule"] for w in cli["warnings"]] == [w["rule"] for w in opa["warnings"]]
    assert [by_file[f"deploy-{n}.json"]["allowed"] for n in (1, 3, 4, 9)] == [
        True,
        True,
        False,
        False,
    ]
