"""Test helpers: a real ``edgepolicy bundle serve`` process, and raw HTTP over a socket.

Raw requests go out byte for byte as written: a client library would normalise the path
(urllib3 resolves ``/../``) or the framing, which is what these tests check the service for.
"""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Service:
    """A running bundle service: its base URL and the file its output goes to."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def port(self) -> int:
        """The port it listens on."""
        port = urlsplit(self.url).port
        assert port is not None
        return port

    def connect(self, timeout: float = 5) -> socket.socket:
        """Open a TCP connection to it."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


@contextmanager
def bundle_service(
    directory: Path, *flags: str, token_file: Path | None = None
) -> Iterator[Service]:
    """Run ``edgepolicy bundle serve --dir directory --port 0 *flags`` until the block ends."""
    log = directory.parent / f"serve-{time.monotonic_ns()}.log"
    upload = ["--upload-token-file", str(token_file)] if token_file else []
    command = [sys.executable, "-m", "edgepolicy", "bundle", "serve", "--dir", str(directory)]
    with open(log, "wb") as errors:
        process = subprocess.Popen(
            [*command, "--port", "0", *upload, *flags], stdout=subprocess.PIPE, stderr=errors
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        line = process.stdout.readline().decode() if ready else ""
        assert " at " in line, f"bundle serve did not start: {line!r} {log.read_text()}"
        service = Service(line.rsplit(" at ", 1)[1].strip().rstrip("/"), log, process)
        _wait_until_answering(service)
        yield service
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _wait_until_answering(service: Service) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with service.connect(1) as connection:
                if service.url.startswith("https"):
                    return  # the TLS tests make their own first request
                reply = exchange(connection, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", settle=0)
                if reply.startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"bundle serve does not answer: {service.log.read_text()}")
        time.sleep(0.1)


def exchange(
    connection: socket.socket | ssl.SSLSocket, request: bytes, *, settle: float = 1.0
) -> bytes:
    """Send ``request`` as is and return all that comes back.

    Reads until the server closes the connection (then ``<EOF>`` ends the result) or sends
    nothing more for ``settle`` seconds after a first answer.
    """
    connection.sendall(request)
    received = b""
    connection.settimeout(10)
    while True:
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            return received
        except ConnectionResetError:
            return received + b"<EOF>"
        if not chunk:
            return received + b"<EOF>"
        received += chunk
        if settle == 0 and b"\r\n\r\n" in received:
            return received
        connection.settimeout(settle or 0.01)


def responses(received: bytes) -> list[int]:
    """Return the status codes of the HTTP/1.1 responses in ``received``, in order."""
    return [int(part[:3]) for part in received.split(b"HTTP/1.1 ")[1:] if part[:3].isdigit()]


def raw(service: Service, request: bytes, *, settle: float = 1.0) -> bytes:
    """Send ``request`` on a new connection and return all that comes back."""
    with service.connect() as connection:
        return exchange(connection, request, settle=settle)
