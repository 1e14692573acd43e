"""Helpers for the model signing tests and bench: a model directory, EC keys, a private PKI."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FACTS = {"model": {"path": "model.onnx", "sha256": "0" * 64, "quantization": "int8"}}


def write_model(
    directory: Path, *, weights: bytes = b"\x08\x07weights", quantization: str = "int8"
) -> Path:
    """A small model directory: a model file, a nested file and edgepolicy-facts.json."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(weights)
    (directory / "tokenizer").mkdir(exist_ok=True)
    (directory / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    facts = {"model": {**FACTS["model"], "quantization": quantization}}
    (directory / "edgepolicy-facts.json").write_text(json.dumps(facts, indent=2) + "\n")
    return directory


@dataclass(frozen=True)
class KeyPair:
    private_key: ec.EllipticCurvePrivateKey
    private_path: Path
    public_path: Path

    @property
    def public_pem(self) -> str:
        return self.public_path.read_text()


def make_key_pair(directory: Path, name: str, curve: ec.EllipticCurve | None = None) -> KeyPair:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private_path = directory / f"{name}.pem"
    public_path = directory / f"{name}.pub.pem"
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(key, private_path, public_path)


NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    not_before: datetime.datetime = NOW - 30 * DAY,
    not_after: datetime.datetime = NOW + 30 * DAY,
    digital_signature: bool = True,
) -> Issued:
    """A certificate: a self-signed root when `issuer` is None, else signed by `issuer`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature and not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not ca and not digital_signature,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if not ca:
        usage = (
            ExtendedKeyUsageOID.CODE_SIGNING
            if digital_signature
            else ExtendedKeyUsageOID.SERVER_AUTH
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    certificate = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Issued(certificate, key)


@dataclass(frozen=True)
class Pki:
    """A root CA, an intermediate, and files for a leaf signer (key, certificate, chain)."""

    root: Issued
    intermediate: Issued
    directory: Path

    def leaf_files(self, name: str, **kwargs: object) -> tuple[Path, Path, Path]:
        leaf = issue(name, issuer=self.intermediate, **kwargs)  # type: ignore[arg-type]
        key_path = self.directory / f"{name}.key.pem"
        cert_path = self.directory / f"{name}.cert.pem"
        chain_path = self.directory / f"{name}.chain.pem"
        key_path.write_bytes(
            leaf.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_path.write_text(leaf.pem)
        chain_path.write_text(self.intermediate.pem)
        return key_path, cert_path, chain_path

    def root_file(self) -> Path:
        path = self.directory / f"root-{id(self)}.pem"
        path.write_text(self.root.pem)
        return path


def make_pki(directory: Path, name: str) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    root = issue(f"{name} Root CA", ca=True, not_before=NOW - 365 * DAY, not_after=NOW + 365 * DAY)
    intermediate = issue(
        f"{name} Signing CA",
        issuer=root,
        ca=True,
        not_before=NOW - 365 * DAY,
        not_after=NOW + 365 * DAY,
    )
    return Pki(root, intermediate, directory)
