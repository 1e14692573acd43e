"""The serving commands' --tls-cert/--tls-key: a file that cannot serve is named with its flag
before anything is served (never a passphrase prompt)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

from edgepolicy.cli import main

KeyPairWriter = Callable[[Path, Path, str], x509.Certificate]  # tests/unit/conftest.py
BUNDLE_SERVE = ("bundle", "serve", "--port", "0", "--dir")  # then the folder
WEBHOOK_SERVE = ("serve", "--opa-url", "http://127.0.0.1:1")


def _encrypted_key(key_file: Path) -> bytes:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    encrypted = serialization.BestAvailableEncryption(b"passphrase")
    return key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted)


@pytest.mark.parametrize(
    ("cert", "key", "flag", "named", "problem"),
    [
        ("missing.pem", "tls.key", "--tls-cert", "missing.pem", "not found"),
        ("tls.crt", "missing.key", "--tls-key", "missing.key", "not found"),
        ("tls.key", "tls.key", "--tls-cert", "tls.key", "no PEM certificate"),
        ("junk", "tls.key", "--tls-cert", "junk", "no PEM certificate"),
        ("tls.crt", "tls.crt", "--tls-key", "tls.crt", "no PEM private key"),
        ("tls.crt", "junk", "--tls-key", "junk", "no PEM private key"),
        ("tls.crt", "encrypted.key", "--tls-key", "encrypted.key", "encrypted"),
        ("tls.crt", ".", "--tls-key", ".", "not found"),
        ("tls.crt", "other.key", "--tls-cert/--tls-key", "other.key", "key values mismatch"),
    ],
)
@pytest.mark.parametrize("command", [BUNDLE_SERVE, WEBHOOK_SERVE])
def test_a_bad_tls_file_is_named_with_its_flag(
    tmp_path: Path,
    command: tuple[str, ...],
    write_key_pair: KeyPairWriter,
    capsys: pytest.CaptureFixture[str],
    cert: str,
    key: str,
    flag: str,
    named: str,
    problem: str,
) -> None:
    write_key_pair(tmp_path / "tls.crt", tmp_path / "tls.key", "service")
    write_key_pair(tmp_path / "other.crt", tmp_path / "other.key", "other")
    (tmp_path / "encrypted.key").write_bytes(_encrypted_key(tmp_path / "tls.key"))
    (tmp_path / "junk").write_text("not PEM\n")
    serve = [*command, str(tmp_path)] if command[0] == "bundle" else list(command)
    files = ["--tls-cert", str(tmp_path / cert), "--tls-key", str(tmp_path / key)]
    assert main([*serve, *files]) == 2  # never a passphrase prompt, never serving
    error = capsys.readouterr().err
    assert f"error: {flag} " in error, error
    assert str(tmp_path / named) in error and problem in error, error
