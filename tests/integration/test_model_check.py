"""`edgepolicy check` on signed models with the real CLI, a real OPA and the real verifier: the
ModelPolicies may come from the inputs or from OPA's data (as a bundle carries them); either way
their trust verifies the annotations, and only verified facts count."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "samples" / "model-trust" / "input"


def _check(*args: str | Path) -> dict[str, tuple[bool, list[str]]]:
    result = subprocess.run(
        [sys.executable, "-m", "edgepolicy", "check", "--opa", str(find_opa(None)),
         "--output", "json", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return {
        f"{entry['kind']}/{entry['name']}": (
            entry["allowed"],
            sorted(v["rule"] for v in entry["violations"]),
        )
        for entry in report["results"]
    }


def _policies() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((SAMPLE / "policies.yaml").read_text()))


def test_model_policies_from_opa_data_verify_the_annotations(tmp_path: Path) -> None:
    sections: dict[str, Any] = {"finops": {}, "model": {}}
    for policy in _policies():
        section = "model" if policy["kind"] == "ModelPolicy" else "finops"
        namespace, name = policy["metadata"]["namespace"], policy["metadata"]["name"]
        sections[section].setdefault(namespace, {})[name] = policy
    # A policy directory (the library plus data) as a bundle build or `serve --policies` hands
    # policies over: the validator's output, marked. (`--data` files may not set them.)
    library = tmp_path / "library"
    shutil.copytree(library_path(), library, ignore=shutil.ignore_patterns("*_test.rego"))
    data = {"edgepolicy": {"policies": {**sections, "validated": True}}}
    (library / "data.json").write_text(json.dumps(data))

    verdicts = _check("--policy", library, SAMPLE / "workloads.yaml")

    assert verdicts["Deployment/signed-int8"] == (True, [])
    assert verdicts["Deployment/from-configmap"] == (True, [])
    assert verdicts["Deployment/signed-fp32"] == (False, ["model.quantization"])
    assert verdicts["Deployment/edited-facts"][1] == [
        "model.bias",
        "model.quantization",
        "model.signature",
    ]


def test_the_same_verdicts_with_the_policies_among_the_inputs() -> None:
    verdicts = _check(SAMPLE)
    assert verdicts["Deployment/signed-int8"] == (True, [])
    assert verdicts["Deployment/signed-fp32"] == (False, ["model.quantization"])


def test_without_any_model_policy_nothing_is_verified(tmp_path: Path) -> None:
    finops = [p for p in _policies() if p["kind"] == "FinOpsPolicy"]
    (tmp_path / "finops.yaml").write_text(yaml.safe_dump_all(finops))
    verdicts = _check(tmp_path / "finops.yaml", SAMPLE / "workloads.yaml")
    assert verdicts["Deployment/signed-int8"] == (False, ["model.quantization"])


def test_model_policies_carried_in_a_bundle(tmp_path: Path) -> None:
    repo = tmp_path / "policy-repo"
    repo.mkdir()
    (repo / "policies.yaml").write_text((SAMPLE / "policies.yaml").read_text())
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "policies"], check=True)
    bundle = tmp_path / "bundle.tar.gz"
    built = subprocess.run(
        [sys.executable, "-m", "edgepolicy", "bundle", "build", "--repo", str(repo),
         "--out", str(bundle), "--opa", str(find_opa(None))],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr

    verdicts = _check("--policy", bundle, SAMPLE / "workloads.yaml")

    assert verdicts["Deployment/signed-int8"] == (True, [])
    assert verdicts["Deployment/signed-fp32"] == (False, ["model.quantization"])
