"""A private Sigstore instance minted in the test, so that keyless signatures verify offline.

It plays the three services a keyless signature involves, with keys generated here:
- Fulcio: a root CA issuing a short-lived leaf for an OIDC identity (SAN + issuer extension),
  with an embedded SCT (RFC 6962 precertificate timestamp) signed by
- the CT log key, and
- Rekor: a dsse/0.0.1 log entry in a one-leaf Merkle tree, its signed checkpoint and its signed
  entry timestamp (inclusion promise).
`trusted_root_json()` lists the CA, the CT log key and the Rekor key in Sigstore's
trusted_root.json format; `sign()` writes a model-signing keyless bundle for a directory (the
same in-toto statement model-signing builds, signed with the leaf key over DSSE PAE).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import struct
from pathlib import Path

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_IN_TOTO = "application/vnd.in-toto+json"
_EC_DETAILS = "PKIX_ECDSA_P256_SHA_256"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _der_octet_string(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _der_utf8_string(text: str) -> bytes:
    data = text.encode()
    return b"\x0c" + _der_length(len(data)) + data


def _pae(payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(_IN_TOTO), _IN_TOTO.encode(), len(payload), payload)


class OfflineSigstore:
    """Fulcio CA, CT log and Rekor log keys for one test; all offline."""

    def __init__(self, name: str = "offline") -> None:
        self.now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{name}.test"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} fulcio"),
            ]
        )
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(days=365))
            .not_valid_after(self.now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )

    # --- the trusted root -------------------------------------------------------------------

    def _log(self, key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
        start = (self.now - datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(_spki(key.public_key())),
                "keyDetails": _EC_DETAILS,
                "validFor": {"start": start},
            },
            "logId": {"keyId": _b64(_key_id(key.public_key()))},
        }

    def trusted_root_json(self) -> str:
        start = (self.now - datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [self._log(self.rekor_key, "https://rekor.offline.invalid")],
                "certificateAuthorities": [
                    {
                        "subject": {"organization": "offline.test", "commonName": "fulcio"},
                        "uri": "https://fulcio.offline.invalid",
                        "certChain": {
                            "certificates": [
                                {"rawBytes": _b64(self.ca.public_bytes(serialization.Encoding.DER))}
                            ]
                        },
                        "validFor": {"start": start},
                    }
                ],
                "ctlogs": [self._log(self.ct_key, "https://ctfe.offline.invalid")],
                "timestampAuthorities": [],
            }
        )

    # --- Fulcio + CT ------------------------------------------------------------------------

    def _leaf_builder(
        self,
        key: ec.EllipticCurvePrivateKey,
        identity: str,
        issuer: str,
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        serial: int,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(_OIDC_ISSUER_OID, issuer.encode()), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(_OIDC_ISSUER_V2_OID, _der_utf8_string(issuer)),
                critical=False,
            )
        )

    def _sct_extension(self, signature: bytes, timestamp_ms: int) -> x509.UnrecognizedExtension:
        sct = (
            struct.pack("!B32sQH", 0, _key_id(self.ct_key.public_key()), timestamp_ms, 0)
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )
        sct_list = struct.pack("!HH", len(sct) + 2, len(sct)) + sct
        return x509.UnrecognizedExtension(_SCT_LIST_OID, _der_octet_string(sct_list))

    def issue(
        self,
        identity: str,
        issuer: str,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A Fulcio-style leaf for `identity` with an embedded SCT from the CT log."""
        key = ec.generate_private_key(ec.SECP256R1())
        not_before = not_before or self.now - datetime.timedelta(minutes=1)
        not_after = not_after or self.now + datetime.timedelta(minutes=10)
        serial = x509.random_serial_number()
        timestamp_ms = int(not_before.timestamp() * 1000)
        # The SCT signs the TBS certificate without the SCT extension (RFC 6962 precertificate):
        # issue once with a placeholder SCT of the same shape, sign its precertificate TBS, then
        # issue again with the real SCT (the TBS without the SCT list is identical).
        builder = self._leaf_builder(key, identity, issuer, not_before, not_after, serial)
        draft = builder.add_extension(
            self._sct_extension(b"\x00" * 72, timestamp_ms), critical=False
        ).sign(self.ca_key, hashes.SHA256())
        tbs = draft.tbs_precertificate_bytes
        signed_entry = (
            _key_id(self.ca_key.public_key())
            + struct.pack("!I", len(tbs))[1:]  # u24 length
            + tbs
        )
        digitally_signed = (
            struct.pack("!BBQH", 0, 0, timestamp_ms, 1) + signed_entry + struct.pack("!H", 0)
        )
        sct_signature = self.ct_key.sign(digitally_signed, ec.ECDSA(hashes.SHA256()))
        certificate = builder.add_extension(
            self._sct_extension(sct_signature, timestamp_ms), critical=False
        ).sign(self.ca_key, hashes.SHA256())
        assert certificate.tbs_precertificate_bytes == tbs
        return key, certificate

    # --- signing + Rekor --------------------------------------------------------------------

    def sign(
        self,
        directory: Path,
        signature: Path,
        *,
        identity: str = "release@models.test",
        issuer: str = "https://issuer.models.test",
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> str:
        """Sign `directory` keyless as `identity`; write the bundle to `signature`, return it."""
        from google.protobuf import json_format
        from model_signing import hashing
        from model_signing._signing import signing

        key, certificate = self.issue(identity, issuer, not_before=not_before, not_after=not_after)
        manifest = hashing.Config().hash(directory)
        payload = json_format.MessageToJson(signing.Payload(manifest).statement.pb).encode()
        dsse_signature = key.sign(_pae(payload), ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payload": _b64(payload),
            "payloadType": _IN_TOTO,
            "signatures": [{"sig": _b64(dsse_signature), "keyid": ""}],
        }
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {
                    "rawBytes": _b64(certificate.public_bytes(serialization.Encoding.DER))
                },
                "tlogEntries": [self._log_entry(payload, dsse_signature, envelope, certificate)],
            },
            "dsseEnvelope": envelope,
        }
        text = json.dumps(bundle)
        signature.write_text(text)
        return text

    def _log_entry(
        self,
        payload: bytes,
        dsse_signature: bytes,
        envelope: dict[str, object],
        certificate: x509.Certificate,
    ) -> dict[str, object]:
        body = json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(payload).hexdigest(),
                    },
                    "signatures": [
                        {
                            "signature": _b64(dsse_signature),
                            "verifier": _b64(certificate.public_bytes(serialization.Encoding.PEM)),
                        }
                    ],
                },
            },
            separators=(",", ":"),
        ).encode()
        rekor_id = _key_id(self.rekor_key.public_key())
        integrated_time = int(self.now.timestamp())
        root_hash = hashlib.sha256(b"\x00" + body).digest()  # a one-leaf Merkle tree
        note = f"rekor.offline.invalid - 1\n1\n{_b64(root_hash)}\n"
        note_signature = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 rekor.offline.invalid {_b64(rekor_id[:4] + note_signature)}\n"
        promise = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": rekor_id.hex(),
                "logIndex": 0,
            }
        )
        signed_entry_timestamp = self.rekor_key.sign(promise, ec.ECDSA(hashes.SHA256()))
        return {
            "logIndex": "0",
            "logId": {"keyId": _b64(rekor_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(signed_entry_timestamp)},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(root_hash),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }
