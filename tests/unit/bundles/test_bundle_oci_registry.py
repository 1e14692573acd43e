"""OCI references, and registry flags on the command line (a registry: test_bundle_oci_client.py
and the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgepolicy.bundles.oci_registry import OciReference, _is_loopback, parse_reference
from edgepolicy.bundles.publish import Target, parse_target

from edgepolicy.bundle_format import tar_gz
from edgepolicy.errors import UsageError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oci://registry.example.com/edge/policy:v1",
         OciReference("registry.example.com", "edge/policy", "v1")),
        ("oci://127.0.0.1:5000/policy", OciReference("127.0.0.1:5000", "policy", "latest")),
        ("oci://localhost:5000/a/b/c:1.0_rc-2",
         OciReference("localhost:5000", "a/b/c", "1.0_rc-2")),
        (f"oci://[::1]:5000/p@{DIGEST}", OciReference("[::1]:5000", "p", None, DIGEST)),
        ("oci://r.example.com/my-team/edge__policy.x:tag",
         OciReference("r.example.com", "my-team/edge__policy.x", "tag")),
    ],
)  # fmt: skip
def test_references(text: str, expected: OciReference) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert parse_reference(str(ref)) == ref
    assert str(ref) == "oci://" + ref.resource


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("registry.example.com/edge:v1", "expected oci://REGISTRY/REPOSITORY:TAG"),
        ("oci://registry.example.com", "no registry host"),
        ("oci://registry.example.com/Edge:v1", "repository 'Edge' must be lower-case"),
        ("oci://registry.example.com/edge:v/1", "repository 'edge:v/1'"),
        ("oci://registry.example.com/edge:-v1", "tag '-v1' is not a valid OCI tag"),
        ("oci://registry.example.com/edge@sha256:abc", "digest must be sha256:"),
        ("oci://r.example.com/edge//x:v1", "repository 'edge//x'"),
    ],
)
def test_bad_references_say_why(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_reference(text)


def test_credentials_in_a_reference_are_refused_without_being_shown() -> None:
    with pytest.raises(UsageError) as error:
        parse_target("oci://ci:hunter2@registry.example.com/edge:v1")
    assert "hunter2" not in str(error.value)
    assert "credentials do not belong in the reference" in str(error.value)


def test_oci_targets() -> None:
    assert parse_target("oci://127.0.0.1:5000/edge/policy:v1") == Target(
        "oci", "oci://127.0.0.1:5000/edge/policy:v1"
    )
    assert parse_target("oci://127.0.0.1:5000/edge") == Target(
        "oci", "oci://127.0.0.1:5000/edge:latest"
    )


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [("localhost:5000", True), ("127.0.0.1:5000", True), ("127.8.9.1", True),
     ("[::1]:5000", True), ("registry.example.com", False), ("10.0.0.1:5000", False),
     ("localhost.example.com", False)],
)  # fmt: skip
def test_loopback_registries(registry: str, loopback: bool) -> None:
    assert _is_loopback(registry) is loopback


def test_the_command_line_reports_registry_credential_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgepolicy.cli import main

    monkeypatch.delenv("EDGEPOLICY_REGISTRY_PASSWORD", raising=False)
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(tar_gz({".manifest": b'{"revision":"r"}'}))
    target = ["bundle", "publish", str(bundle), "--to", "oci://127.0.0.1:9/edge:v1"]
    assert main([*target, "--username", "ci"]) == 2
    assert capsys.readouterr().err == (
        "edgepolicy: error: registry 127.0.0.1:9: a user name needs a password and a password "
        "a user name\n"
    )
    missing = tmp_path / "missing"
    assert main([*target, "--username", "ci", "--password-file", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"edgepolicy: error: cannot read --password-file {missing}: No such file or directory\n"
    )
    assert main(["bundle", "pull", "registry.example.com/edge:v1"]) == 2
    assert "expected oci://REGISTRY/REPOSITORY:TAG" in capsys.readouterr().err
