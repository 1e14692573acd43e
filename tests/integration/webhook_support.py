"""Helpers for the webhook integration tests: a test CA issuing TLS certificates, free loopback
ports, a real `edgepolicy serve` process, and an HTTPS client. (A module of its own, not
conftest.py, so test modules import it unambiguously whatever other conftest files pytest loads.)"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgepolicy.opa_client import OpaClient

REPO_ROOT = Path(__file__).resolve().parents[2]
EDGEPOLICY = Path(sys.executable).parent / "edgepolicy"


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCA:
    """A throw-away certificate authority issuing server certificates for loopback."""

    __test__ = False  # not a test class

    def __init__(self, directory: Path, name: str = "edgepolicy test CA") -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = directory / "ca.crt"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    @property
    def pem(self) -> bytes:
        """The CA certificate in PEM (what a webhook configuration's caBundle holds)."""
        return self.cert_file.read_bytes()

    def issue(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        common_name: str = "edgepolicy-webhook",
        dns_names: Sequence[str] = ("localhost",),
        ips: Sequence[str] = ("127.0.0.1",),
    ) -> x509.Certificate:
        """Write a new server key and certificate (signed by this CA) and return the certificate.

        The key is written first and the certificate replaces the old one atomically, the way
        rotation tools update mounted secrets.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        for path, content in (
            (key_file, _pem_key(key)),
            (cert_file, cert.public_bytes(serialization.Encoding.PEM)),
        ):
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_bytes(content)
            os.replace(temporary, path)
        return cert


@dataclass
class ServerCert:
    """A server certificate and key on disk, issued by :class:`TestCA`."""

    cert_file: Path
    key_file: Path
    cert: x509.Certificate


def https_pool(ca: TestCA, *, timeout: float = 10.0) -> urllib3.PoolManager:
    """An HTTPS client that trusts only the test CA."""
    return urllib3.PoolManager(
        ca_certs=str(ca.cert_file), retries=False, timeout=urllib3.Timeout(total=timeout)
    )


class ServeProcess:
    """A real `edgepolicy serve` process (gunicorn + TLS) on a free loopback port."""

    def __init__(self, args: Sequence[str], *, log_file: Path, port: int) -> None:
        self.port = port
        self.url = f"https://127.0.0.1:{port}"
        self.log_file = log_file
        self._log = open(log_file, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(EDGEPOLICY), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_file.read_text(errors="replace")

    def wait_healthy(self, client: urllib3.PoolManager, timeout: float = 60.0) -> None:
        """Wait until /healthz answers over TLS; fail with the server's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"edgepolicy serve exited ({self.process.returncode}):\n{self.log()}")
            try:
                if client.request("GET", self.url + "/healthz", timeout=1.0).status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"edgepolicy serve did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        """Stop gunicorn (and its local OPA) gracefully, then forcibly."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        else:
            # A crashed master may leave workers or OPA behind in its session.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def post_review(
    client: urllib3.PoolManager, url: str, review: Any, *, raw: bytes | None = None
) -> tuple[int, Any]:
    """POST an AdmissionReview (or raw bytes) and return (status, decoded JSON body)."""
    body = raw if raw is not None else json.dumps(review).encode()
    response = client.request("POST", url, body=body, headers={"Content-Type": "application/json"})
    return response.status, json.loads(response.data)


@contextlib.contextmanager
def tls_opa(
    opa_binary: Path, cert: ServerCert, arguments: Sequence[str], log_file: Path
) -> Iterator[int]:
    """Run a real OPA serving only https on 127.0.0.1 with ``cert``, loading ``arguments``
    (files, directories), and yield its port once it answers. The caller trusts the CA
    (``SSL_CERT_FILE``)."""
    port = free_port()
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [
                *(str(opa_binary), "run", "--server", "--skip-version-check"),
                *("--addr", f"127.0.0.1:{port}"),
                *("--tls-cert-file", str(cert.cert_file)),
                *("--tls-private-key-file", str(cert.key_file)),
                *arguments,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = OpaClient(f"https://127.0.0.1:{port}", timeout=1.0)
        try:
            deadline = time.monotonic() + 30
            while not client.health():
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"OPA over TLS did not start:\n{log_file.read_text()}")
                time.sleep(0.05)
            yield port
        finally:
            client.close()
            process.terminate()
            process.wait(10)
