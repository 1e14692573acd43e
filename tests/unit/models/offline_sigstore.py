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
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

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
        key: ec.EllipticCurvePublicKey,
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
            .public_key(key)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
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
        public_key: ec.EllipticCurvePublicKey | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A Fulcio-style leaf for `identity` with an embedded SCT from the CT log.

        For `public_key` (a CSR's), the returned private key is a throw-away: the caller holds
        the real one.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        not_before = not_before or self.now - datetime.timedelta(minutes=1)
        not_after = not_after or self.now + datetime.timedelta(minutes=10)
        serial = x509.random_serial_number()
        timestamp_ms = int(not_before.timestamp() * 1000)
        # The SCT signs the TBS certificate without the SCT extension (RFC 6962 precertificate):
        # issue once with a placeholder SCT of the same shape, sign its precertificate TBS, then
        # issue again with the real SCT (the TBS without the SCT list is identical).
        builder = self._leaf_builder(
            public_key or key.public_key(), identity, issuer, not_before, not_after, serial
        )
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
        body = self._dsse_body(payload, dsse_signature, json.dumps(envelope).encode(), certificate)
        entry = self._integrate(body)
        return {
            "logIndex": "0",
            "logId": {"keyId": _b64(bytes.fromhex(entry["logID"]))},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(entry["integratedTime"]),
            "inclusionPromise": {
                "signedEntryTimestamp": entry["verification"]["signedEntryTimestamp"]
            },
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(
                    bytes.fromhex(entry["verification"]["inclusionProof"]["rootHash"])
                ),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": entry["verification"]["inclusionProof"]["checkpoint"]},
            },
            "canonicalizedBody": entry["body"],
        }

    @staticmethod
    def _dsse_body(
        payload: bytes, dsse_signature: bytes, envelope: bytes, certificate: x509.Certificate
    ) -> bytes:
        """The dsse/0.0.1 entry Rekor records for a proposed DSSE envelope."""
        return json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(envelope).hexdigest(),
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

    def _integrate(self, body: bytes) -> dict[str, Any]:
        """Rekor v1's answer for `body`, logged at index 0 of a one-leaf tree."""
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
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": rekor_id.hex(),
            "logIndex": 0,
            "verification": {
                "inclusionProof": {
                    "logIndex": 0,
                    "rootHash": root_hash.hex(),
                    "treeSize": 1,
                    "hashes": [],
                    "checkpoint": checkpoint,
                },
                "signedEntryTimestamp": _b64(signed_entry_timestamp),
            },
        }

    # --- Fulcio, Rekor and an OIDC provider over HTTP on 127.0.0.1 --------------------------

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve Fulcio (/api/v2/signingCert), Rekor v1 (/api/v1/log/entries) and an OIDC
        discovery document on 127.0.0.1; yields the base URL. Stopped on exit."""
        instance = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, document: object) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.endswith("/.well-known/openid-configuration"):
                    base = f"http://{self.headers['Host']}"
                    self._reply(
                        200,
                        {
                            "issuer": base,
                            "authorization_endpoint": f"{base}/authorize",
                            "token_endpoint": f"{base}/token",
                        },
                    )
                else:
                    self._reply(404, {"message": "not found"})

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/api/v2/signingCert":
                    self._reply(200, instance._fulcio(request, self.headers["Authorization"]))
                elif self.path == "/api/v1/log/entries":
                    self._reply(201, instance._rekor(request))
                else:
                    self._reply(404, {"message": "not found"})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    def _fulcio(self, request: dict[str, Any], authorization: str) -> dict[str, Any]:
        csr = x509.load_pem_x509_csr(base64.b64decode(request["certificateSigningRequest"]))
        claims = json.loads(_b64url_decode(authorization.split()[1].split(".")[1]))
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        _, certificate = self.issue(
            claims.get("email", claims["sub"]), claims["iss"], public_key=public_key
        )
        chain = [
            certificate.public_bytes(serialization.Encoding.PEM).decode(),
            self.ca.public_bytes(serialization.Encoding.PEM).decode(),
        ]
        return {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

    def _rekor(self, request: dict[str, Any]) -> dict[str, Any]:
        proposed = request["spec"]["proposedContent"]
        envelope = json.loads(proposed["envelope"])
        certificate = x509.load_pem_x509_certificate(base64.b64decode(proposed["verifiers"][0]))
        body = self._dsse_body(
            base64.b64decode(envelope["payload"]),
            base64.b64decode(envelope["signatures"][0]["sig"]),
            proposed["envelope"].encode(),
            certificate,
        )
        return {hashlib.sha256(body).hexdigest(): self._integrate(body)}

    def client_trust_config_json(self, base_url: str) -> str:
        """A Sigstore ClientTrustConfig: this trusted root and services at `base_url`."""
        start = (self.now - datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def service(url: str) -> dict[str, object]:
            return {
                "url": url,
                "majorApiVersion": 1,
                "validFor": {"start": start},
                "operator": "offline.test",
            }

        return json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": json.loads(self.trusted_root_json()),
                "signingConfig": {
                    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                    "caUrls": [service(base_url)],
                    "oidcUrls": [service(base_url)],
                    "rekorTlogUrls": [service(base_url)],
                    "tsaUrls": [],
                    "rekorTlogConfig": {"selector": "ANY"},
                    "tsaConfig": {"selector": "ANY"},
                },
            }
        )


def identity_token(email: str, issuer: str) -> str:
    """An unsigned OIDC identity token (sigstore-python reads its claims; Fulcio would verify)."""
    now = int(datetime.datetime.now(datetime.UTC).timestamp())
    claims = {
        "iss": issuer,
        "sub": email,
        "email": email,
        "email_verified": True,
        "aud": "sigstore",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }

    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
