"""OpaProcess's bundle checks, which run before any OPA starts."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from edgepolicy.bundle_format import bundle_roots, check_data_outside_roots, is_signed
from edgepolicy.errors import BundleError, UsageError
from edgepolicy.opa_process import OpaProcess
from edgepolicy.verification_keys import VerificationKey


def _tarball(tmp_path: Path, files: dict[str, bytes], name: str = "b.tar.gz") -> Path:
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as archive:
        for member, content in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


def _manifest(roots: Any) -> bytes:
    return json.dumps({"revision": "r", "roots": roots}).encode()


def test_roots_come_from_the_manifest(tmp_path: Path) -> None:
    assert bundle_roots(_tarball(tmp_path, {"/.manifest": _manifest(["a/b", "c"])})) == [
        "a/b",
        "c",
    ]
    assert bundle_roots(_tarball(tmp_path, {"./.manifest": b"{}"}, "c.tar.gz")) == [""]
    assert bundle_roots(_tarball(tmp_path, {"x.rego": b""}, "d.tar.gz")) == [""]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"not json", "cannot read the bundle's .manifest"), (_manifest("a"), "list of strings")],
)
def test_bad_manifests_are_usage_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    with pytest.raises(BundleError, match=expected):
        bundle_roots(_tarball(tmp_path, {".manifest": content}))


def test_unreadable_bundle_is_a_usage_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(BundleError, match="cannot read"):
        bundle_roots(broken)
    with pytest.raises(BundleError, match="cannot read the bundle: not a tar archive") as caught:
        is_signed(broken)
    assert "\n" not in str(caught.value)


def test_truncated_bundle_is_a_usage_error(tmp_path: Path) -> None:
    content = b'{"revision": "r"}' * 4000
    whole = _tarball(tmp_path, {"/.manifest": content, "/x.rego": content}).read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    for read in (bundle_roots, is_signed):
        with pytest.raises(BundleError, match="truncated or corrupt compressed data"):
            read(truncated)


def test_signed_bundles_are_recognised(tmp_path: Path) -> None:
    assert is_signed(_tarball(tmp_path, {"/.signatures.json": b"{}"}))
    assert not is_signed(_tarball(tmp_path, {"/.manifest": b"{}"}, "u.tar.gz"))


def test_a_signatures_entry_that_is_no_regular_file_still_counts_as_signed(tmp_path: Path) -> None:
    path = tmp_path / "dir.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        entry = tarfile.TarInfo(".signatures.json")
        entry.type = tarfile.DIRTYPE
        archive.addfile(entry)
    assert is_signed(path)
    with pytest.raises(BundleError, match="cannot read the bundle's .signatures.json"):
        OpaProcess(Path("/no/opa"), bundles=[path], verification_key=VerificationKey(
            "k", "RS256", "pem"))  # fmt: skip


@pytest.mark.parametrize(
    ("data", "roots", "refused"),
    [
        ({"edgepolicy": {"settings": {}}}, ["edgepolicy"], "data.edgepolicy"),
        ({"edgepolicy": {"settings": {"a": 1}}}, ["edgepolicy/settings"],
         "data.edgepolicy.settings"),
        ({"edgepolicy": 3}, ["edgepolicy/settings"], "data.edgepolicy"),
        ({"anything": 1}, [""], "data"),
        ({"edgepolicy": {"policies": {}}}, ["edgepolicy/settings"], None),
        ({"other": {"x": 1}}, ["edgepolicy"], None),
        ({"edgepolicy": {}}, ["edgepolicy"], None),
    ],
)  # fmt: skip
def test_data_under_bundle_roots_is_refused(
    data: dict[str, Any], roots: list[str], refused: str | None
) -> None:
    if refused is None:
        check_data_outside_roots(data, roots, Path("b.tar.gz"))
        return
    with pytest.raises(BundleError, match=f"the data sets {refused.replace('.', '[.]')}, but"):
        check_data_outside_roots(data, roots, Path("b.tar.gz"))


def test_signed_bundle_without_key_is_refused_before_starting(tmp_path: Path) -> None:
    signed = _tarball(tmp_path, {"/.manifest": _manifest(["x"]), "/.signatures.json": b"{}"})
    with pytest.raises(UsageError) as refused:
        OpaProcess(Path("/no/opa"), bundles=[signed])
    assert str(refused.value) == (
        f"bundle {signed} is signed: give the public key that verifies it "
        "(and the key id its signature names)"
    )  # the library names no flag: the CLI does (test_check_cli.py)
    key = VerificationKey("k", "ES256", "pem")
    OpaProcess(Path("/no/opa"), bundles=[signed], verification_key=key)


def _jwt(header: dict[str, Any], payload: dict[str, Any]) -> str:
    def encode(part: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")

    return f"{encode(header)}.{encode(payload)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        ({"alg": "RS256", "kid": "main"}, {"keyid": "main"}),
        ({"alg": "RS256"}, {"keyid": "main"}),  # as `opa build --claims-file` writes it
        ({"alg": "RS256", "kid": "main"}, {}),
    ],
)
def test_signature_naming_another_key_id_is_refused(
    tmp_path: Path, header: dict[str, Any], payload: dict[str, Any]
) -> None:
    signatures = json.dumps({"signatures": [_jwt(header, payload)]}).encode()
    signed = _tarball(tmp_path, {"/.manifest": _manifest(["x"]), "/.signatures.json": signatures})
    with pytest.raises(BundleError, match="signed with key id 'main', but the verification key"):
        OpaProcess(Path("/no/opa"), bundles=[signed], verification_key=VerificationKey(
            "default", "RS256", "pem"))  # fmt: skip
    OpaProcess(Path("/no/opa"), bundles=[signed], verification_key=VerificationKey(
        "main", "RS256", "pem"))  # fmt: skip


@pytest.mark.parametrize(
    "signatures",
    [b"not json", b'{"signatures": "x"}', b'{"signatures": ["not-a-jwt"]}', b'{"signatures": [3]}'],
)
def test_unreadable_signatures_are_refused(tmp_path: Path, signatures: bytes) -> None:
    signed = _tarball(tmp_path, {"/.signatures.json": signatures})
    with pytest.raises(BundleError, match="cannot read the bundle's .signatures.json"):
        OpaProcess(Path("/no/opa"), bundles=[signed], verification_key=VerificationKey(
            "k", "RS256", "pem"))  # fmt: skip
