"""The OPA REST client, against a scripted HTTP server standing in for OPA."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from edgepolicy.errors import OpaError, OpaUnavailableError
from edgepolicy.opa_client import OpaClient


class _Script:
    """What the stand-in answers next, and what it received."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = b"{}"
        self.delay = 0.0
        self.requests: list[tuple[str, str, Any]] = []


@pytest.fixture
def fake_opa() -> Iterator[tuple[str, _Script]]:
    script = _Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            script.requests.append((self.command, self.path, json.loads(raw) if raw else None))
            if script.delay:
                threading.Event().wait(script.delay)
            self.send_response(script.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(script.body)))
            self.end_headers()
            self.wfile.write(script.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script
    server.shutdown()
    server.server_close()


def test_decide_posts_input_to_the_decision_document(fake_opa: tuple[str, _Script]) -> None:
    url, script = fake_opa
    script.body = json.dumps({"result": {"allowed": True, "policies": ["ai/p"]}}).encode()
    decision = OpaClient(url).decide({"request": {"uid": "1"}})
    assert decision.allowed is True
    assert decision.policies == ("ai/p",)
    assert script.requests == [
        ("POST", "/v1/data/edgepolicy/admission/decision", {"input": {"request": {"uid": "1"}}})
    ]


def test_query_without_input_is_a_get(fake_opa: tuple[str, _Script]) -> None:
    url, script = fake_opa
    script.body = b'{"result": {"a": 1}}'
    assert OpaClient(url + "/").query("/edgepolicy/settings/") == {"a": 1}
    assert script.requests[0][:2] == ("GET", "/v1/data/edgepolicy/settings")


def test_undefined_document_is_an_error(fake_opa: tuple[str, _Script]) -> None:
    url, _ = fake_opa
    with pytest.raises(OpaError, match="no value at data.edgepolicy.admission.decision"):
        OpaClient(url).decide({})


def test_http_error_carries_opas_message(fake_opa: tuple[str, _Script]) -> None:
    url, script = fake_opa
    script.status = 500
    script.body = b'{"code": "internal_error", "message": "eval_conflict_error: boom"}'
    with pytest.raises(OpaError, match="HTTP 500: eval_conflict_error: boom"):
        OpaClient(url).query("x")


def test_bad_json_is_an_error(fake_opa: tuple[str, _Script]) -> None:
    url, script = fake_opa
    script.body = b"<html>"
    with pytest.raises(OpaError, match="invalid JSON"):
        OpaClient(url).query("x")


def test_malformed_decision_is_an_error(fake_opa: tuple[str, _Script]) -> None:
    url, script = fake_opa
    script.body = b'{"result": {"allowed": "maybe"}}'
    with pytest.raises(OpaError, match="decision.allowed"):
        OpaClient(url).decide({})


def test_slow_opa_is_unavailable(fake_opa: tuple[str, _Script]) -> None:
    url, script = fake_opa
    script.delay = 0.5
    with pytest.raises(OpaUnavailableError, match="unavailable"):
        OpaClient(url, timeout=0.1).query("x", {})


def test_refused_connection_is_unavailable_and_unhealthy() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpaClient(f"http://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(OpaUnavailableError):
        client.query("x")
    assert client.health() is False


def test_health_reflects_status_and_asks_for_bundles(fake_opa: tuple[str, _Script]) -> None:
    url, script = fake_opa
    client = OpaClient(url)
    assert client.health() is True
    script.status = 500
    assert client.health(bundles=True) is False
    assert [path for _, path, _ in script.requests] == ["/health", "/health?bundles"]


@pytest.mark.parametrize("bad", ["127.0.0.1:8181", "ftp://x", "http://"])
def test_bad_base_url_is_rejected(bad: str) -> None:
    with pytest.raises(OpaError, match="OPA URL must look like"):
        OpaClient(bad)


@pytest.fixture
def keepalive_opa() -> Iterator[tuple[str, list[int], list[bool]]]:
    """An HTTP/1.1 stand-in that keeps connections open; it records each request's client port
    and, while ``drop[0]`` is set, closes the connection after answering without saying so."""
    ports: list[int] = []
    drop = [False]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ports.append(self.client_address[1])
            self.close_connection = drop[0]  # decided before the client can see the answer
            body = b'{"result": {"allowed": true}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", ports, drop
    server.shutdown()
    server.server_close()


def test_connections_are_kept_alive_and_reused(
    keepalive_opa: tuple[str, list[int], list[bool]],
) -> None:
    url, ports, _ = keepalive_opa
    client = OpaClient(url)
    for _ in range(3):
        assert client.decide({}).allowed is True
    assert len(ports) == 3 and len(set(ports)) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(
    keepalive_opa: tuple[str, list[int], list[bool]],
) -> None:
    url, ports, drop = keepalive_opa
    client = OpaClient(url)
    drop[0] = True
    assert client.decide({}).allowed is True  # the server closes this connection afterwards
    drop[0] = False
    threading.Event().wait(0.1)
    assert client.decide({}).allowed is True  # sent again on a fresh connection
    assert len(ports) == 2 and ports[0] != ports[1]


def test_a_path_no_request_line_can_carry_is_an_error_and_unhealthy_never_raises(
    fake_opa: tuple[str, _Script],
) -> None:
    url, script = fake_opa
    client = OpaClient(url)
    with pytest.raises(OpaError, match="printable ASCII"):
        client.query("edgepolicy/policies/model/a HTTP/1.1\r\n\r\nGET /v1/data/x")
    assert script.requests == []
    assert OpaClient(url + "/a b").health() is False
