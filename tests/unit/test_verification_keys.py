"""Reading bundle verification keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from edgepolicy.errors import UsageError
from edgepolicy.verification_keys import load_verification_key


def _public_pem(tmp_path: Path, private: PrivateKeyTypes) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.mark.parametrize(
    ("private", "algorithm"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
    ],
)
def test_algorithm_follows_the_key_type(
    tmp_path: Path, private: PrivateKeyTypes, algorithm: str
) -> None:
    key = load_verification_key(_public_pem(tmp_path, private), "k1")
    assert (key.key_id, key.algorithm) == ("k1", algorithm)
    assert key.pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_unsupported_key_type_is_refused(tmp_path: Path) -> None:
    path = _public_pem(tmp_path, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(UsageError, match="expected an RSA or EC"):
        load_verification_key(path)


def test_private_key_is_refused_without_reading_it_back(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "private.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(UsageError, match="this is a private key") as caught:
        load_verification_key(path)
    assert "BEGIN" not in str(caught.value)


def test_garbage_and_missing_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(UsageError, match="not a PEM public key"):
        load_verification_key(garbage)
    with pytest.raises(UsageError, match="cannot read"):
        load_verification_key(tmp_path / "missing.pem")


def test_text_around_the_pem_block_is_left_out(tmp_path: Path) -> None:
    path = _public_pem(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    block = path.read_text()
    path.write_bytes("Clé de vérification\n".encode() + block.encode() + b"\n\xff trailer\n")
    key = load_verification_key(path)
    assert key.pem == block
