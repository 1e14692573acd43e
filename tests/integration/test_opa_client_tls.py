"""The OPA client over https, against real TLS servers: a real OPA serving TLS and a threaded
Python TLS server the tests control (connections counted, ALPN seen, handshake withheld).

A private CA is trusted the way docs/webhook.md tells a user to: ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_support import ServerCert, TestCA, tls_opa

from edgepolicy.errors import OpaError, OpaUnavailableError
from edgepolicy.http_connections import ConnectionPool
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OpaProcess

pytestmark = pytest.mark.integration

POLICY = """package tlsprobe

answer := input.n + 1

ready := true
"""


@pytest.fixture
def trust_test_ca(test_ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> TestCA:
    """Trust the test CA for connections made from now on, as a user would (SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.cert_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return test_ca


class _TcpRelay:
    """A TCP relay in front of a server that counts the connections it accepts (TLS passes
    through it end to end). With ``slow_after`` set, the server's bytes that arrive that many
    seconds or more into a connection are passed on one every 20 ms."""

    def __init__(self, upstream_port: int, *, slow_after: float | None = None) -> None:
        self._upstream = upstream_port
        self._slow_after = slow_after
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            for source, sink, slow_after in (
                (client, upstream, None),
                (upstream, client, self._slow_after),
            ):
                threading.Thread(
                    target=self._pump, args=(source, sink, slow_after), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, slow_after: float | None) -> None:
        start = time.monotonic()
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if slow_after is None or time.monotonic() - start < slow_after:
                    sink.sendall(data)
                    continue
                for index in range(len(data)):
                    sink.sendall(data[index : index + 1])
                    time.sleep(0.02)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


# The client in a process of its own, as the webhook runs it (gevent's ssl) or with threads.
_CLIENT = """
import json, sys, time
if sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()
from edgepolicy.errors import OpaError
from edgepolicy.opa_client import OpaClient
client = OpaClient(sys.argv[2], timeout=float(sys.argv[3]))
input_doc = {"n": 1, "pad": "x" * int(sys.argv[5])}
start = time.monotonic()
try:
    outcome = {"result": client.query(sys.argv[4], input_doc)}
except OpaError as error:
    outcome = {"error": str(error)}
print(json.dumps([outcome, time.monotonic() - start]))
"""


def _ask_from(
    runtime: str, url: str, timeout: float, path: str, pad: int = 0
) -> tuple[object, float]:
    """What a client in a new process running ``runtime`` got for one query (``{"result":
    ...}`` or ``{"error": message}``) and the seconds it took. Raises
    subprocess.TimeoutExpired when the process takes over 15 s."""
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, runtime, url, str(timeout), path, str(pad)],
        capture_output=True,
        text=True,
        timeout=15,
        check=True,
    )
    outcome, seconds = json.loads(done.stdout)
    return outcome, seconds


@pytest.fixture
def probe_opa(
    opa_binary: Path, server_cert: ServerCert, trust_test_ca: TestCA, tmp_path: Path
) -> Iterator[int]:
    """A real OPA serving only https on 127.0.0.1 (certificate from the test CA); its port."""
    (tmp_path / "probe.rego").write_text(POLICY, encoding="utf-8")
    with tls_opa(
        opa_binary, server_cert, [str(tmp_path / "probe.rego")], tmp_path / "opa.log"
    ) as port:
        yield port


def test_queries_to_a_real_tls_opa_reuse_one_connection(probe_opa: int) -> None:
    relay = _TcpRelay(probe_opa)
    # The certificate names 127.0.0.1 and localhost: the relay's address is checked against it.
    client = OpaClient(f"https://localhost:{relay.port}", timeout=5.0, maxsize=1)
    try:
        assert [client.query("tlsprobe/answer", {"n": n}) for n in range(5)] == [1, 2, 3, 4, 5]
        assert client.query("tlsprobe/ready") is True  # GET, on the same connection
        assert client.health()
    finally:
        client.close()
        relay.close()
    assert relay.accepted == 1


def test_a_wrong_scheme_is_named(probe_opa: int, opa_binary: Path, trust_test_ca: TestCA) -> None:
    plain = OpaClient(f"http://127.0.0.1:{probe_opa}", timeout=5.0)
    with pytest.raises(OpaError) as caught:
        plain.query("tlsprobe/ready")
    plain.close()
    assert str(caught.value) == (
        f"OPA at http://127.0.0.1:{probe_opa} answered HTTP 400 with invalid JSON: "
        "'Client sent an HTTP request to an HTTPS server.'"
    )
    with OpaProcess(opa_binary) as plain_opa:
        url = plain_opa.url.replace("http://", "https://")
        secure = OpaClient(url, timeout=5.0)
        with pytest.raises(OpaUnavailableError) as unavailable:
            secure.query("tlsprobe/ready")
        secure.close()
    assert str(unavailable.value) == (
        f"OPA at {url} is unavailable: TLS failed: wrong version number (is it serving plain http?)"
    )


class _TlsServer:
    """A threaded HTTPS/1.1 server answering every request ``200 {"result": N}`` (N counts the
    requests). It counts the connections it accepts and records the ALPN protocol each
    handshake selected (it prefers ``h2``, as Go's servers do, so only a client offering
    nothing but ``http/1.1`` gets that). ``close`` ends the connection after each answer,
    without saying so in a header: ``"notify"`` with a TLS close_notify, ``"abrupt"`` without.
    ``handshake=False`` accepts the TCP connection and never answers the client's hello;
    ``delay`` seconds pass before each answer, whose body ``pad`` spaces lengthen."""

    def __init__(
        self,
        cert: ServerCert,
        *,
        close: str = "",
        handshake: bool = True,
        delay: float = 0.0,
        pad: int = 0,
    ) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert.cert_file, cert.key_file)
        self._context.set_alpn_protocols(["h2", "http/1.1"])
        self._close = close
        self._handshake = handshake
        self._delay = delay
        self._pad = pad
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self.requests = 0
        self.alpn: list[str | None] = []
        self.handshake_errors: list[str] = []
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if not self._handshake:
                self._held.append(conn)  # open, silent
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            tls = self._context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as error:
            self.handshake_errors.append(str(error))
            conn.close()
            return
        self.alpn.append(tls.selected_alpn_protocol())
        buffer = b""
        with contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    if not (data := tls.recv(65536)):
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += tls.recv(65536)
                buffer = buffer[length:]
                self.requests += 1
                time.sleep(self._delay)
                body = json.dumps({"result": self.requests}).encode() + b" " * self._pad
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                if self._close == "notify":
                    tls.unwrap().close()
                    return
                if self._close == "abrupt":
                    tls.close()  # Python sends no close_notify here
                    return
        tls.close()

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def tls_server(server_cert: ServerCert, trust_test_ca: TestCA) -> Iterator[_TlsServer]:
    server = _TlsServer(server_cert)
    yield server
    server.close()


def test_keep_alive_reuses_the_tls_connection(tls_server: _TlsServer) -> None:
    client = OpaClient(f"https://127.0.0.1:{tls_server.port}", timeout=5.0)
    try:
        assert [client.query("any/path", {"n": n}) for n in range(4)] == [1, 2, 3, 4]
        assert client.query("any/path") == 5
    finally:
        client.close()
    assert tls_server.accepted == 1


def test_the_client_offers_only_http_1_1_by_alpn(tls_server: _TlsServer) -> None:
    client = OpaClient(f"https://localhost:{tls_server.port}", timeout=5.0)
    try:
        assert client.query("any/path") == 1
    finally:
        client.close()
    assert tls_server.alpn == ["http/1.1"]


@pytest.mark.parametrize("close", ["notify", "abrupt"])
def test_a_tls_connection_the_server_closed_while_idle_is_replaced(
    server_cert: ServerCert, trust_test_ca: TestCA, close: str
) -> None:
    server = _TlsServer(server_cert, close=close)
    client = OpaClient(f"https://127.0.0.1:{server.port}", timeout=5.0)
    try:
        first = client.query("any/path")
        time.sleep(0.2)  # the server has closed its end by now
        assert (first, client.query("any/path", {"n": 1})) == (1, 2)
    finally:
        client.close()
        server.close()
    assert server.accepted == 2


@pytest.mark.parametrize(
    ("ca_name", "problem"),
    [
        ("another CA", "unable to get local issuer certificate"),
        ("edgepolicy test CA", "certificate signature failure"),  # an impostor of the trusted
    ],
)
def test_a_certificate_from_an_untrusted_ca_is_refused(
    tmp_path: Path, trust_test_ca: TestCA, ca_name: str, problem: str
) -> None:
    other_ca = TestCA(tmp_path, ca_name)
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    server = _TlsServer(ServerCert(cert_file, key_file, other_ca.issue(cert_file, key_file)))
    client = OpaClient(f"https://127.0.0.1:{server.port}", timeout=5.0)
    try:
        with pytest.raises(OpaUnavailableError) as caught:
            client.query("any/path")
        assert not client.health()
    finally:
        client.close()
        server.close()
    message = str(caught.value)
    assert message.startswith(f"OPA at https://127.0.0.1:{server.port} is unavailable: ")
    assert message.endswith(f"its TLS certificate failed verification: {problem}")
    assert server.requests == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_certificate_for_another_host_is_refused(
    test_ca: TestCA, tmp_path: Path, trust_test_ca: TestCA, host: str
) -> None:
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert = test_ca.issue(cert_file, key_file, dns_names=["opa.example"], ips=["10.0.0.1"])
    server = _TlsServer(ServerCert(cert_file, key_file, cert))
    client = OpaClient(f"https://{host}:{server.port}", timeout=5.0)
    try:
        with pytest.raises(OpaUnavailableError) as caught:
            client.query("any/path")
    finally:
        client.close()
        server.close()
    message = str(caught.value)
    assert message.startswith(f"OPA at https://{host}:{server.port} is unavailable: ")
    what = "IP address" if host == "127.0.0.1" else "Hostname"
    assert message.endswith(
        f"its TLS certificate failed verification: {what} mismatch, "
        f"certificate is not valid for '{host}'."
    )
    assert server.requests == 0


def test_a_handshake_never_answered_fails_within_the_timeout(
    server_cert: ServerCert, trust_test_ca: TestCA
) -> None:
    server = _TlsServer(server_cert, handshake=False)
    client = OpaClient(f"https://127.0.0.1:{server.port}", timeout=0.5)
    pool = ConnectionPool("https", "127.0.0.1", server.port, 1)
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            client.query("any/path")
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    try:
        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(5.0)  # ten times the timeout: a hang, not a slow machine, exceeds it
        assert not asking.is_alive(), "the request hung in the TLS handshake"
        with pytest.raises(TimeoutError):
            pool.request("GET", "/", None, 0.3)
    finally:
        client.close()
        pool.clear()
        server.close()
    assert len(outcome) == 1 and isinstance(outcome[0], OpaUnavailableError)
    assert str(outcome[0]) == f"OPA at https://127.0.0.1:{server.port} is unavailable: timed out"
    assert server.accepted == 2


@pytest.mark.parametrize("runtime", ["threads", "gevent"])
def test_a_large_input_goes_to_a_real_tls_opa(probe_opa: int, runtime: str) -> None:
    url = f"https://127.0.0.1:{probe_opa}"
    assert _ask_from(runtime, url, 10.0, "tlsprobe/answer", pad=4_000_000)[0] == {"result": 2}


@pytest.mark.parametrize("runtime", ["threads", "gevent"])
@pytest.mark.parametrize("slow", ["handshake", "answer"])
def test_a_server_sending_slowly_fails_the_request_within_its_timeout(
    server_cert: ServerCert, trust_test_ca: TestCA, runtime: str, slow: str
) -> None:
    # Slow from the first byte (the handshake), or from 0.5 s on, after a quick handshake,
    # while the server waits 0.7 s before its answer. A byte per 20 ms, the handshake takes over
    # 20 s and the answer 60 s: a client that waits anew for each piece of a TLS record (with
    # the time left when the call began) takes about that long.
    server = _TlsServer(server_cert, delay=0.7, pad=3000)
    relay = _TcpRelay(server.port, slow_after=0.0 if slow == "handshake" else 0.5)
    url = f"https://127.0.0.1:{relay.port}"
    try:
        outcome, seconds = _ask_from(runtime, url, 2.0, "any/path")
    finally:
        relay.close()
        server.close()
    assert outcome == {"error": f"OPA at {url} is unavailable: timed out"}
    assert seconds < 2.0 + 3.0  # the deadline, with room for a loaded machine
    assert server.requests == (0 if slow == "handshake" else 1)
