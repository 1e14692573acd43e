"""Our signed bundles against the stock OPA CLI: accepted when intact, refused when changed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "bundles"))

from edgepolicy.bundles.builder import build_bundle  # noqa: E402
from edgepolicy.bundles.canonical import file_digest  # noqa: E402
from edgepolicy.bundles.signing import SigningKey, load_signing_key  # noqa: E402
from policyrepo import PolicyRepo, finops_policy, write_key  # noqa: E402

from edgepolicy.bundle_format import read_tar_gz, tar_gz  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

pytestmark = pytest.mark.integration

KEYS = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
}


def _opa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_opa()), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> PolicyRepo:
    repo = PolicyRepo(tmp_path_factory.mktemp("signing") / "policies")
    repo.write("cost.yaml", finops_policy())
    unicode = finops_policy("unicode", "edge")  # names are DNS-1123; annotations are free text
    unicode["metadata"]["annotations"] = {"note": "ünïcode-\u2028-<&>"}
    repo.write("unicode.yaml", unicode)
    repo.commit("policies")
    return repo


@pytest.fixture(params=sorted(KEYS))
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, Path]:
    key = KEYS[request.param]()
    private = write_key(tmp_path / "key.pem", key)
    public = tmp_path / "key.pub"
    public.write_text(SigningKey(key, "edge").public_pem(), encoding="ascii")
    return request.param, private, public


def _verify(
    bundle: Path, public: Path, algorithm: str, out: Path
) -> subprocess.CompletedProcess[str]:
    return _opa(
        "build", "--bundle", str(bundle), "--verification-key", str(public),
        "--verification-key-id", "edge", "--signing-alg", algorithm, "--output", str(out),
    )  # fmt: skip


def test_stock_opa_accepts_our_bundle_and_rejects_any_change(
    repo: PolicyRepo, keys: tuple[str, Path, Path], tmp_path: Path
) -> None:
    algorithm, private, public = keys
    bundle = build_bundle(repo.path, opa=find_opa(), signing_key=load_signing_key(private, "edge"))
    good = tmp_path / "good.tar.gz"
    good.write_bytes(bundle.archive)
    accepted = _verify(good, public, algorithm, tmp_path / "checked.tar.gz")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    files = read_tar_gz(bundle.archive, source="good")
    data_json = "edgepolicy/policies/data.json"
    rego = min(name for name in files if name.endswith(".rego"))
    assert b'"maxCPUCores":8' in files[data_json]
    changes = {
        "data": (data_json, files[data_json].replace(b'"maxCPUCores":8', b'"maxCPUCores":9')),
        "manifest": (".manifest", files[".manifest"].replace(b'"roots"', b'"x":1,"roots"')),
        "rego": (rego, files[rego] + b"\n# changed\n"),
    }
    for label, (name, content) in changes.items():
        changed = tmp_path / f"{label}.tar.gz"
        changed.write_bytes(tar_gz({**files, name: content}))
        refused = _verify(changed, public, algorithm, tmp_path / "refused.tar.gz")
        assert refused.returncode != 0, label
        assert "digest mismatch" in refused.stdout + refused.stderr, label

    extra = tmp_path / "extra.tar.gz"
    extra.write_bytes(tar_gz({**files, "edgepolicy/evil.rego": b"package edgepolicy.evil\n"}))
    refused = _verify(extra, public, algorithm, tmp_path / "refused.tar.gz")
    assert "not included in bundle signature" in refused.stdout + refused.stderr


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_our_digests_equal_those_opa_build_signs(
    repo: PolicyRepo, keys: tuple[str, Path, Path], tmp_path: Path
) -> None:
    algorithm, private, _ = keys
    tree = tmp_path / "tree"
    for name, content in read_tar_gz(
        build_bundle(repo.path, opa=find_opa()).archive, source="x"
    ).items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(content)
    signed = tmp_path / "opa.tar.gz"
    built = subprocess.run(
        [str(find_opa()), "build", "--bundle", ".", "--signing-key", str(private),
         "--signing-alg", algorithm, "--output", str(signed)],
        cwd=tree, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    files = read_tar_gz(signed.read_bytes(), source="opa build")
    signed_by_opa = _payload(json.loads(files.pop(".signatures.json"))["signatures"][0])
    assert {entry["name"] for entry in signed_by_opa["files"]} == set(files)
    for entry in signed_by_opa["files"]:
        assert entry["algorithm"] == "SHA-256"
        assert file_digest(entry["name"], files[entry["name"]]) == entry["hash"], entry["name"]
