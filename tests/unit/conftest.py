"""Fixtures shared by the unit tests: self-signed key pairs for TLS servers, a fake exec
credential plugin."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from plugin_support import FakePlugin

KeyPairWriter = Callable[[Path, Path, str], x509.Certificate]


def _write_key_pair(cert_file: Path, key_file: Path, common_name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


@pytest.fixture
def write_key_pair() -> KeyPairWriter:
    """Write a self-signed certificate (valid for 127.0.0.1) and its key; returns it."""
    return _write_key_pair


@pytest.fixture
def fake_plugin(tmp_path: Path) -> FakePlugin:
    """A fake exec credential plugin with its own state directory."""
    state = tmp_path / "plugin-state"
    state.mkdir()
    return FakePlugin(state)
