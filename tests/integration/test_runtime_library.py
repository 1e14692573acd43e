"""`check`, `serve` and bundles load the same runtime library: the Rego modules the real OPA
reports (GET /v1/policies) for the OPA `check` starts and the OPA `serve` supervises equal the
library modules a built bundle holds, and none of them is a test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import urllib3
from edgepolicy.bundles.builder import build_bundle, write_bundle
from edgepolicy.webhook.opa_supervisor import OpaSupervisor

from edgepolicy import library
from edgepolicy.bundle_format import read_tar_gz
from edgepolicy.checking import CheckSession, PolicySource
from edgepolicy.library import library_path, runtime_files
from edgepolicy.opa_process import OpaProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _module_ids(url: str) -> list[str]:
    response = urllib3.request("GET", f"{url}/v1/policies", timeout=5)
    assert response.status == 200
    return [module["id"] for module in json.loads(response.data)["result"]]


def _relative(ids: list[str], marker: str) -> set[str]:
    """The module ids as paths relative to the library (the part after ``marker``)."""
    marker = marker.lstrip("/")  # OPA reports paths without their leading slash
    assert all(marker in module_id for module_id in ids), ids
    return {module_id.split(marker, 1)[1].lstrip("/") for module_id in ids}


def _bundle(tmp_path: Path, opa_binary: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    policy = ROOT / "examples" / "policies" / "edge-ai-inference-cost-policy.yaml"
    (repo / "policy.yaml").write_bytes(policy.read_bytes())
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "policy"], check=True)
    out = tmp_path / "bundle.tar.gz"
    write_bundle(build_bundle(repo, opa=opa_binary), out)
    return out


def test_check_serve_and_bundles_load_the_same_runtime_files(
    opa_binary: Path, tmp_path: Path
) -> None:
    library = str(library_path())
    expected = set(runtime_files())
    assert expected and not any(name.endswith("_test.rego") for name in expected)
    assert any(library_path().rglob("*_test.rego"))  # the checkout has tests to leave out

    with CheckSession(opa_binary=opa_binary, policy=PolicySource.from_path(library_path())) as s:
        checked = _relative(_module_ids(s._opa.url), library)  # the OPA `check` starts

    served_opa = OpaSupervisor(opa_binary, paths=[library_path()], data={})  # as `serve` does
    served_opa.start()
    try:
        served = _relative(_module_ids(served_opa.url), library)
    finally:
        served_opa.stop()

    bundle = _bundle(tmp_path, opa_binary)
    packed = {
        name
        for name in read_tar_gz(bundle.read_bytes(), source=str(bundle))
        if name.endswith(".rego")
    }
    with OpaProcess(opa_binary, bundles=[bundle]) as opa:
        activated = _relative(_module_ids(opa.url), str(bundle))

    assert checked == served == expected
    assert packed == activated == expected  # the policy repository has no Rego of its own


def test_library_data_files_land_where_opa_puts_a_directory_s_data(
    opa_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "rego"
    (root / "lib" / "limits").mkdir(parents=True)
    (root / "lib" / "limits" / "data.json").write_text('{"cores": 4}')
    (root / "lib" / "limits" / "limits_test.rego").write_text("package broken_on_purpose {")
    monkeypatch.setattr(library, "library_path", lambda: root.resolve())

    with OpaProcess(opa_binary, paths=[root]) as opa:  # the test file would not even parse
        response = urllib3.request("GET", f"{opa.url}/v1/data/lib/limits", timeout=5)

    assert json.loads(response.data)["result"] == {"cores": 4}
