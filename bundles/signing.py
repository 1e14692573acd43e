"""Bundle signatures the OPA way: ``.signatures.json`` holding one JWS over the files' digests.

The JWT payload is ``{"files": [{"name", "hash", "algorithm": "SHA-256"}], "keyid": ID}`` and its
protected header carries ``alg`` and ``kid``, exactly what ``opa build --signing-key`` writes and
what OPA's bundle plugin verifies against its configured ``keys``. RS256 (PKCS#1 v1.5) is
deterministic by construction; ES256 uses deterministic ECDSA (RFC 6979), so the same files and
key always give byte-identical signatures.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from edgepolicy.bundles.canonical import file_digest

from edgepolicy.errors import BundleError, UsageError

HASH_ALGORITHM = "SHA-256"
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    """A private key able to sign bundles, with the key id OPA looks its public half up by."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key_id: str

    @property
    def algorithm(self) -> str:
        """The JWS algorithm this key signs with: ``RS256`` or ``ES256``."""
        return "RS256" if isinstance(self.key, rsa.RSAPrivateKey) else "ES256"

    def public_pem(self) -> str:
        """Return the PEM public key to put in OPA's ``keys`` configuration."""
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def sign(self, message: bytes) -> bytes:
        """Return the raw JWS signature of ``message`` (for ES256, ``r || s``)."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        der = self.key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def load_signing_key(path: str | Path, key_id: str) -> SigningKey:
    """Load a PEM private key (RSA of at least 2048 bits, or EC P-256) from ``path``.

    The key's file is never echoed back in errors.

    Raises:
        UsageError: the file is unreadable, not an unencrypted PEM private key, of an unsupported
            type, or ``key_id`` is empty.
    """
    if not key_id:
        raise UsageError("a signing key needs a key id (OPA finds the verification key by its id)")
    try:
        pem = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read signing key {path}: {error.strerror}") from error
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise UsageError(
            f"signing key {path}: not an unencrypted PEM private key (RSA or EC P-256)"
        ) from error
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise UsageError(
                f"signing key {path}: RSA key has {key.key_size} bits, expected at least "
                f"{_MIN_RSA_BITS}"
            )
        return SigningKey(key, key_id)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise UsageError(
                f"signing key {path}: EC key on curve {key.curve.name}, expected P-256 (ES256)"
            )
        return SigningKey(key, key_id)
    raise UsageError(f"signing key {path}: unsupported key type, expected RSA or EC P-256")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signatures_document(files: Mapping[str, bytes], key: SigningKey) -> bytes:
    """Return the content of ``.signatures.json`` signing every file in ``files``.

    ``files`` maps bundle paths (without a leading ``/``) to their content; it must not contain
    ``.signatures.json`` itself.

    Raises:
        BundleError: a structured file (``data.json``, ``.manifest``) is not valid JSON.
    """
    entries = []
    for name in sorted(files):
        try:
            digest = file_digest(name, files[name])
        except ValueError as error:
            raise BundleError(f"bundle file {name} is not valid JSON: {error}") from error
        entries.append({"name": name, "hash": digest, "algorithm": HASH_ALGORITHM})
    header = {"alg": key.algorithm, "kid": key.key_id, "typ": "JWT"}
    payload = {"files": entries, "keyid": key.key_id}
    signing_input = f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(payload))}"
    token = f"{signing_input}.{_b64url(key.sign(signing_input.encode('ascii')))}"
    return _compact_json({"signatures": [token]})
