"""The Prometheus query API client against a local HTTP server that answers as Prometheus does
(the real Prometheus is in tests/integration/test_finops_report.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from edgepolicy.errors import PrometheusError, UsageError
from edgepolicy.prometheus_api import PrometheusAuth, PrometheusClient

AT = datetime(2026, 12, 1, tzinfo=UTC)


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []
    answer: tuple[int, bytes] = (200, b"{}")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Handler.seen.append({"path": self.path, "form": parse_qs(body), "headers": self.headers})
        status, payload = _Handler.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _answer(status: int, document: Any) -> None:
    _Handler.answer = (status, json.dumps(document).encode())


def test_query_sends_the_time_and_credentials(server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    _answer(200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"pod": "a"}, "value": [AT.timestamp(), "2.5"]}]}})  # fmt: skip
    auth = PrometheusAuth(bearer_token_file=token, headers={"X-Scope-OrgID": "edge"})
    client = PrometheusClient(f"{server}/prometheus/", auth=auth)
    assert client.query("up", AT) == [{"metric": {"pod": "a"}, "value": [AT.timestamp(), "2.5"]}]
    request = _Handler.seen[0]
    assert request["path"] == "/prometheus/api/v1/query"
    assert request["form"] == {"query": ["up"], "time": [f"{AT.timestamp():.3f}"]}
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["X-Scope-OrgID"] == "edge"


def test_api_errors_name_the_url_the_query_and_the_reason(server: str) -> None:
    _answer(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    client = PrometheusClient(server)
    with pytest.raises(PrometheusError) as caught:
        client.query_range("rate(x[5m]", AT, AT, 60)
    message = str(caught.value)
    assert f"{server}/api/v1/query_range" in message
    assert "'rate(x[5m]'" in message and "HTTP 400, bad_data: parse error" in message


def test_an_answer_that_is_not_the_api(server: str) -> None:
    _Handler.answer = (404, b"404 page not found")
    with pytest.raises(PrometheusError, match="HTTP 404, not a Prometheus API answer"):
        PrometheusClient(server).query("up", AT)


def test_a_range_answer_to_an_instant_query_is_refused(server: str) -> None:
    _answer(200, {"status": "success", "data": {"resultType": "matrix", "result": []}})
    with pytest.raises(PrometheusError, match="expected a vector, got matrix"):
        PrometheusClient(server).query("up[5m]", AT)


@pytest.mark.parametrize(
    "url",
    [
        "prometheus:9090",
        "ftp://host",
        "http://host/?q=1",
        "http://",
        "http://[::1",
        "http://host:99999",
        "http://host:port",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(UsageError, match="Prometheus URL"):
        PrometheusClient(url)
