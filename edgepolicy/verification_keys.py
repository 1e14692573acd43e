"""Public keys that verify signed OPA bundles, with the JWS algorithm each implies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgepolicy.errors import UsageError

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True)
class VerificationKey:
    """A bundle verification key as OPA's ``keys`` configuration takes it."""

    key_id: str
    algorithm: str
    pem: str


def load_verification_key(path: str | Path, key_id: str = "default") -> VerificationKey:
    """Read a PEM public key (RSA → RS256, EC P-256/P-384/P-521 → ES256/ES384/ES512).

    Raises:
        UsageError: the file is missing or unreadable, holds no PEM public key (a private key
            is refused: verification needs only the public half), or the key type is not one
            OPA verifies bundles with.
    """
    file = Path(path)
    try:
        pem = file.read_bytes()
    except OSError as error:
        raise UsageError(f"{file}: cannot read: {error.strerror}") from error
    if b"PRIVATE KEY" in pem:
        raise UsageError(
            f"{file}: this is a private key; pass the public key (openssl pkey -in KEY -pubout)"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise UsageError(f"{file}: not a PEM public key") from error
    if isinstance(key, rsa.RSAPublicKey):
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        algorithm = _EC_ALGORITHMS[key.curve.name]
    else:
        raise UsageError(f"{file}: expected an RSA or EC (P-256, P-384, P-521) public key")
    canonical = key.public_bytes(  # just the key, whatever text surrounds its PEM block
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return VerificationKey(key_id=key_id, algorithm=algorithm, pem=canonical.decode("ascii"))
