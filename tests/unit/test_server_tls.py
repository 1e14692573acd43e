"""The reloading TLS context: TLS 1.2 minimum, rotation picked up, bad files kept out."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from edgepolicy.webhook.gunicorn_server import ServerOptions, gunicorn_settings
from gunicorn import sock as gunicorn_sock  # type: ignore[import-untyped]
from gunicorn.config import Config  # type: ignore[import-untyped]

from edgepolicy.errors import UsageError
from edgepolicy.server_tls import ReloadingContext, server_context, switching_context

KeyPairWriter = Callable[[Path, Path, str], x509.Certificate]


def test_server_context_requires_tls_1_2(tmp_path: Path, write_key_pair: KeyPairWriter) -> None:
    write_key_pair(tmp_path / "c.pem", tmp_path / "k.pem", "one")
    context = server_context(tmp_path / "c.pem", tmp_path / "k.pem")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_missing_or_mismatched_files_are_usage_errors(
    tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    with pytest.raises(UsageError, match="TLS file not found: .*nope.pem"):
        server_context(tmp_path / "nope.pem", tmp_path / "nope.key")
    with pytest.raises(UsageError, match="TLS file not found: .*nope.pem"):
        ReloadingContext(tmp_path / "nope.pem", tmp_path / "nope.key")
    write_key_pair(tmp_path / "a.pem", tmp_path / "a.key", "a")
    write_key_pair(tmp_path / "b.pem", tmp_path / "b.key", "b")
    with pytest.raises(UsageError, match="cannot load TLS certificate"):
        server_context(tmp_path / "a.pem", tmp_path / "b.key")


def _served_serial(cfg: Config) -> int:
    """Accept one TLS connection the way gunicorn does (its ``ssl_wrap_socket``, which asks
    the ``ssl_context`` hook) and return the serial of the certificate a client was shown."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept_one() -> None:
            connection, _ = listener.accept()
            with gunicorn_sock.ssl_wrap_socket(connection, cfg) as server_side:
                server_side.do_handshake()

        server = threading.Thread(target=accept_one)
        server.start()
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_context.wrap_socket(raw) as client,
        ):
            der = client.getpeercert(binary_form=True)
        server.join(5)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_rotation_is_served_and_a_half_rotated_pair_is_ignored(
    tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first_cert = write_key_pair(cert, key, "first")
    tls = ReloadingContext(cert, key, check_interval=0)
    cfg = Config()
    settings = gunicorn_settings(ServerOptions(cert_file=cert, key_file=key), tls)
    for name in ("certfile", "keyfile", "ssl_context"):
        cfg.set(name, settings[name])
    first = tls.context()
    assert tls.context() is first  # unchanged files: the same context
    assert _served_serial(cfg) == first_cert.serial_number

    second_cert = write_key_pair(tmp_path / "next.crt", tmp_path / "next.key", "second")
    (tmp_path / "next.crt").replace(cert)  # certificate rotated, key not yet
    assert tls.context() is first
    assert _served_serial(cfg) == first_cert.serial_number
    (tmp_path / "next.key").replace(key)
    second = tls.context()
    assert second is not first
    assert second.minimum_version == ssl.TLSVersion.TLSv1_2
    assert _served_serial(cfg) == second_cert.serial_number


def _serial_through(front: ssl.SSLContext, server_hostname: str | None) -> tuple[int, list[Any]]:
    """Complete one handshake with a server socket of ``front`` (as the webhook's evented worker
    and the bundle service wrap their connections); return the serial of the certificate the
    client was shown and the server names the handshake carried (SNI)."""
    names: list[Any] = []
    switch = front.sni_callback
    assert switch is not None

    def recording(connection: Any, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)
        switch(connection, name, context)

    front.sni_callback = recording
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept_one() -> None:
            connection, _ = listener.accept()
            with front.wrap_socket(connection, server_side=True) as server_side:
                server_side.recv(1)  # until the client closes

        server = threading.Thread(target=accept_one)
        server.start()
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname=server_hostname) as client,
        ):
            der = client.getpeercert(binary_form=True)
        server.join(5)
    front.sni_callback = switch
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number), names


# The API server names the webhook's Service (SNI); a client dialling an address sends no name.
@pytest.mark.parametrize("server_hostname", ["edgepolicy-webhook.edgepolicy.svc", None])
def test_a_switching_context_serves_the_rotated_certificate_with_and_without_sni(
    tmp_path: Path, write_key_pair: KeyPairWriter, server_hostname: str | None
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first_cert = write_key_pair(cert, key, "first")
    tls = ReloadingContext(cert, key, check_interval=0)
    front = switching_context(cert, key, tls.context)
    assert _serial_through(front, server_hostname) == (first_cert.serial_number, [server_hostname])

    second_cert = write_key_pair(tmp_path / "next.crt", tmp_path / "next.key", "second")
    (tmp_path / "next.crt").replace(cert)
    (tmp_path / "next.key").replace(key)
    # The front context still holds the first pair: only the switch serves the second.
    assert _serial_through(front, server_hostname)[0] == second_cert.serial_number


def test_files_are_checked_at_most_once_per_interval(
    tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_key_pair(cert, key, "first")
    tls = ReloadingContext(cert, key, check_interval=3600)
    first = tls.context()
    write_key_pair(cert, key, "second")
    assert tls.context() is first
