"""The bundle service over TLS (--tls-cert/--tls-key), following a rotated certificate."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bundleservice import bundle_service, exchange, responses
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from edgepolicy.bundles.atomic_write import write_atomically

from edgepolicy.bundle_format import tar_gz
from edgepolicy.cli import main

KeyPairWriter = Callable[[Path, Path, str], x509.Certificate]  # tests/unit/conftest.py


def _handshake(port: int, ca: Path | None, server_hostname: str | None) -> tuple[bytes, bytes]:
    """Return the certificate the service presents and its answer to a GET."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
    if ca is None or server_hostname is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=server_hostname) as tls,
    ):
        presented = tls.getpeercert(binary_form=True)
        assert presented is not None
        return presented, exchange(tls, b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHost: t\r\n\r\n")


def _replace(path: Path, data: bytes) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(data)
    os.replace(staged, path)


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", None])  # with and without SNI
def test_https_with_the_certificate_in_force_after_a_rotation(
    tmp_path: Path, write_key_pair: KeyPairWriter, server_hostname: str | None
) -> None:
    directory = tmp_path / "bundles"
    directory.mkdir()
    write_atomically(directory / "edgepolicy.tar.gz", tar_gz({".manifest": b"{}"}))
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    first = write_key_pair(cert_file, key_file, "first")
    flags = ("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    with bundle_service(directory, *flags) as service:
        assert service.url.startswith("https://127.0.0.1:")
        presented, answer = _handshake(service.port, cert_file, server_hostname)
        assert presented == first.public_bytes(Encoding.DER)
        assert responses(answer) == [200]

        staged = tmp_path / "staged"
        staged.mkdir()
        second = write_key_pair(staged / "tls.crt", staged / "tls.key", "second")
        _replace(key_file, (staged / "tls.key").read_bytes())
        _replace(cert_file, (staged / "tls.crt").read_bytes())
        deadline = time.monotonic() + 10
        while _handshake(service.port, None, server_hostname)[0] != second.public_bytes(
            Encoding.DER
        ):
            assert time.monotonic() < deadline, "the rotated certificate is never presented"
            time.sleep(0.2)
        presented, answer = _handshake(service.port, cert_file, server_hostname)
        assert presented == second.public_bytes(Encoding.DER)
        assert responses(answer) == [200]


def test_a_stalled_tls_handshake_is_dropped(tmp_path: Path, write_key_pair: KeyPairWriter) -> None:
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_key_pair(cert_file, key_file, "service")
    flags = ("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    with bundle_service(tmp_path, *flags) as service, service.connect(timeout=30) as stalled:
        stalled.sendall(b"\x16\x03\x01")  # the first bytes of a TLS hello, then nothing
        started = time.monotonic()
        stalled.settimeout(30)
        with contextlib.suppress(ConnectionResetError):  # closed, with or without a reset
            assert stalled.recv(100) == b""
        assert 8 < time.monotonic() - started < 20


def test_connections_still_shaking_hands_count_toward_the_cap(
    tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    directory = tmp_path / "bundles"
    directory.mkdir()
    write_atomically(directory / "edgepolicy.tar.gz", tar_gz({".manifest": b"{}"}))
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_key_pair(cert_file, key_file, "service")
    flags = ("--tls-cert", str(cert_file), "--tls-key", str(key_file), "--max-connections", "3")
    with bundle_service(directory, *flags) as service:
        time.sleep(0.5)  # the connection that saw it start is closed
        stalled = [service.connect(timeout=30) for _ in range(3)]
        for connection in stalled:
            connection.sendall(b"\x16\x03\x01")  # the first bytes of a TLS hello, then nothing
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(OSError):  # ssl.SSLError is one: closed before any handshake
            _handshake(service.port, None, None)
        assert time.monotonic() - started < 5  # refused at once, not after the stalled ones
        for connection in stalled:
            connection.close()
        time.sleep(0.5)
        assert responses(_handshake(service.port, None, None)[1]) == [200]


def test_tls_flags_are_checked_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve = ["bundle", "serve", "--dir", str(tmp_path), "--port", "0"]
    assert main([*serve, "--tls-cert", str(tmp_path / "c.pem")]) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
    assert main([*serve, "--max-connections", "0"]) == 2
    assert "--max-connections must be at least 1, got 0" in capsys.readouterr().err
    for port in ("65536", "-1"):
        assert main([*serve, "--port", port]) == 2
        assert f"--port must be 0 to 65535, got {port}" in capsys.readouterr().err
