"""Bundle signatures: JWS structure, algorithms, determinism and key loading."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from edgepolicy.bundles.canonical import file_digest
from edgepolicy.bundles.signing import load_signing_key, signatures_document
from policyrepo import write_key

from edgepolicy.errors import UsageError

FILES = {
    ".manifest": b'{"revision":"abc","roots":["edgepolicy"]}',
    "edgepolicy/policies/data.json": b'{"finops":{},"model":{}}',
    "lib/x.rego": b"package edgepolicy.x\n",
}


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _token(document: bytes) -> tuple[dict[str, Any], dict[str, Any], str, bytes]:
    signatures = json.loads(document)["signatures"]
    assert len(signatures) == 1
    header, payload, signature = signatures[0].split(".")
    return (
        json.loads(_b64(header)),
        json.loads(_b64(payload)),
        f"{header}.{payload}",
        _b64(signature),
    )


def test_rs256_token_carries_kid_and_the_file_digests(rsa_key_file: Path) -> None:
    key = load_signing_key(rsa_key_file, "edgepolicy-bundle")
    header, payload, signed, signature = _token(signatures_document(FILES, key))
    assert header == {"alg": "RS256", "kid": "edgepolicy-bundle", "typ": "JWT"}
    assert payload["keyid"] == "edgepolicy-bundle"
    assert payload["files"] == [
        {"name": name, "hash": file_digest(name, content), "algorithm": "SHA-256"}
        for name, content in sorted(FILES.items())
    ]
    public = key.key.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_es256_signature_is_raw_r_s_and_verifies(ec_key_file: Path) -> None:
    key = load_signing_key(ec_key_file, "k")
    header, _, signed, signature = _token(signatures_document(FILES, key))
    assert header["alg"] == "ES256"
    assert len(signature) == 64
    der = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
    public = key.key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("key_fixture", ["rsa_key_file", "ec_key_file"])
def test_signatures_are_deterministic(key_fixture: str, request: pytest.FixtureRequest) -> None:
    key = load_signing_key(request.getfixturevalue(key_fixture), "k")
    assert signatures_document(FILES, key) == signatures_document(dict(FILES), key)


def test_public_pem_is_what_opa_configuration_needs(ec_key_file: Path) -> None:
    assert load_signing_key(ec_key_file, "k").public_pem().startswith("-----BEGIN PUBLIC KEY-----")


def test_key_id_is_required(rsa_key_file: Path) -> None:
    with pytest.raises(UsageError, match="a signing key needs a key id"):
        load_signing_key(rsa_key_file, "")


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read signing key .*nope.pem"):
        load_signing_key(tmp_path / "nope.pem", "k")


def test_garbage_key_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.pem"
    path.write_text("super-secret-not-a-key")
    with pytest.raises(UsageError) as error:
        load_signing_key(path, "k")
    assert "super-secret" not in str(error.value)
    assert "not an unencrypted PEM private key" in str(error.value)


def test_weak_rsa_and_other_curves_are_rejected(tmp_path: Path) -> None:
    small = write_key(tmp_path / "small.pem", rsa.generate_private_key(65537, 1024))
    with pytest.raises(UsageError, match="1024 bits"):
        load_signing_key(small, "k")
    p384 = write_key(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(UsageError, match="P-256"):
        load_signing_key(p384, "k")
