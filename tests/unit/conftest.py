"""Fixtures shared by the unit tests: self-signed key pairs for TLS servers, signed models,
a fake exec credential plugin."""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from plugin_support import FakePlugin

KeyPairWriter = Callable[..., x509.Certificate]


def _write_key_pair(
    cert_file: Path, key_file: Path, common_name: str, *, dns_name: str | None = None
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject: x509.GeneralName = (
        x509.DNSName(dns_name) if dns_name else x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    )
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
        .add_extension(x509.SubjectAlternativeName([subject]), critical=False)
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
    """Write a self-signed certificate (valid for 127.0.0.1, or for ``dns_name`` only) and its
    key; returns it."""
    return _write_key_pair


@dataclass(frozen=True)
class SignedModel:
    """A model directory signed with a fresh EC key by the real model-signing library: the
    annotations' contents (signature file and facts file) and the public key that verifies them."""

    signature: str
    facts: str
    public_key: str
    directory: Path


def sign_model(directory: Path, facts: dict[str, Any]) -> SignedModel:
    """Write a tiny model and ``facts`` into ``directory`` and sign it (``model sign --key``)."""
    from edgepolicy.models.signatures import FACTS_FILE_NAME, KeySigning, sign_directory

    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(b"\x08\x07weights")
    (directory / FACTS_FILE_NAME).write_text(json.dumps(facts), encoding="utf-8")
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = directory.parent / f"{directory.name}.key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signature_file = directory.parent / f"{directory.name}.sig"
    sign_directory(directory, signature_file, KeySigning(key_file))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SignedModel(
        signature=signature_file.read_text(encoding="utf-8"),
        facts=(directory / FACTS_FILE_NAME).read_text(encoding="utf-8"),
        public_key=public.decode(),
        directory=directory,
    )


INT8_FACTS: dict[str, Any] = {
    "model": {"path": "model.onnx", "sha256": "0" * 64, "size": 9, "quantization": "int8"},
    "evaluations": [
        {"sensitive": "group", "metrics": {"demographicParityDifference": 0.04}},
    ],
}


@pytest.fixture(scope="session")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> SignedModel:
    """An int8 model signed once per session."""
    return sign_model(tmp_path_factory.mktemp("models") / "int8", INT8_FACTS)


@pytest.fixture(scope="session")
def other_signed_model(tmp_path_factory: pytest.TempPathFactory) -> SignedModel:
    """Another model, signed with another key."""
    facts = {**INT8_FACTS, "model": {**INT8_FACTS["model"], "quantization": "none"}}
    return sign_model(tmp_path_factory.mktemp("models") / "fp32", facts)


@pytest.fixture
def fake_plugin(tmp_path: Path) -> FakePlugin:
    """A fake exec credential plugin with its own state directory."""
    state = tmp_path / "plugin-state"
    state.mkdir()
    return FakePlugin(state)
