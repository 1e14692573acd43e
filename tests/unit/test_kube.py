"""The shared Kubernetes API client against a small stand-in API server over real TLS."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepolicy import kube
from edgepolicy.errors import UsageError
from edgepolicy.kube import KubeApi, KubernetesApiError, from_kubeconfig

KeyPairWriter = Callable[[Path, Path, str], object]

TOKEN = "t0ken-never-logged"
POLICIES = "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/finopspolicies"
ROUTES: dict[str, tuple[int, Any]] = {
    POLICIES: (200, {"items": [{"metadata": {"name": "budget"}}]}),
    "/api/v1/namespaces/broken/configmaps": (500, {"message": "etcd is sad"}),
    "/api/v1/namespaces/list/configmaps": (200, ["not", "an", "object"]),
}


class FakeApi(ThreadingHTTPServer):
    requests: list[tuple[str, str, Any]]
    # Path -> how many more times it answers 429 "storage is (re)initializing".
    initializing: dict[str, int]


class _Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((self.command, self.path, sent))
        retry_after = None
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, {"message": "Unauthorized"}
        elif self.server.initializing.get(self.path, 0) > 0:
            self.server.initializing[self.path] -= 1
            status, body = 429, {"message": "storage is (re)initializing"}
            retry_after = "1"
        elif self.command == "POST":
            status, body = 201, sent
        else:
            status, body = ROUTES.get(self.path, (404, {"message": "not found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def api(tmp_path: Path, write_key_pair: KeyPairWriter) -> Iterator[tuple[FakeApi, Path]]:
    """A TLS API server on loopback and a kubeconfig (CA data + token) pointing at it."""
    cert, key = tmp_path / "api.crt", tmp_path / "api.key"
    write_key_pair(cert, key, "127.0.0.1")
    server = FakeApi(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.initializing = {}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": f"https://127.0.0.1:{server.server_address[1]}",
                            "certificate-authority-data": base64.b64encode(
                                cert.read_bytes()
                            ).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
            }
        )
    )
    yield server, kubeconfig
    server.shutdown()
    server.server_close()


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _client(kubeconfig: Path, time: FakeTime) -> KubeApi:
    client = from_kubeconfig(kubeconfig)
    client._clock, client._sleep = time.clock, time.sleep
    return client


def test_get_object_with_the_token(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    document = from_kubeconfig(kubeconfig).get_object(POLICIES, timeout=2)
    assert document == {"items": [{"metadata": {"name": "budget"}}]}
    assert server.requests == [("GET", POLICIES, None)]


def test_not_found_is_none(api: tuple[FakeApi, Path]) -> None:
    assert from_kubeconfig(api[1]).get_object("/api/v1/namespaces/x/pods/y", timeout=2) is None


def test_server_errors_raise_with_the_path_and_the_api_message(
    api: tuple[FakeApi, Path],
) -> None:
    client = from_kubeconfig(api[1])
    with pytest.raises(KubernetesApiError, match="configmaps: HTTP 500 etcd is sad"):
        client.get_object("/api/v1/namespaces/broken/configmaps", timeout=2)
    with pytest.raises(KubernetesApiError, match="not a JSON object"):
        client.get_object("/api/v1/namespaces/list/configmaps", timeout=2)


def test_request_sends_json_and_returns_any_status(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    client = from_kubeconfig(kubeconfig)
    created = client.request("POST", "/api/v1/namespaces/a/configmaps", body={"a": 1}, timeout=2)
    assert (created.status, json.loads(created.body)) == (201, {"a": 1})
    assert server.requests[-1] == ("POST", "/api/v1/namespaces/a/configmaps", {"a": 1})
    refused = client.request("GET", "/api/v1/namespaces/broken/configmaps", timeout=2)
    assert (refused.status, refused.message) == (500, "etcd is sad")


def test_initializing_storage_is_retried_after_retry_after(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    server.initializing[POLICIES] = 1
    time = FakeTime()
    assert _client(kubeconfig, time).get_object(POLICIES, timeout=3) is not None
    assert time.sleeps == [1.0]  # Retry-After honoured: it fits the timeout
    assert [path for _, path, _ in server.requests] == [POLICIES, POLICIES]


def test_retries_after_429_stay_within_the_timeout(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    server.initializing[POLICIES] = 2
    time = FakeTime()
    assert _client(kubeconfig, time).get_object(POLICIES, timeout=1.0) is not None
    # Retry-After: 1 would overrun the 1 s timeout: the waits are shortened to fit in it.
    assert len(time.sleeps) == 2 and time.now < 1.0
    assert len(server.requests) == 3


def test_429_until_the_timeout_runs_out_is_an_error(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    server.initializing[POLICIES] = 1000
    time = FakeTime()
    with pytest.raises(KubernetesApiError, match="HTTP 429 storage is .re.initializing"):
        _client(kubeconfig, time).get_object(POLICIES, timeout=0.5)
    assert time.now <= 0.5


def test_an_untrusted_server_certificate_is_refused(
    api: tuple[FakeApi, Path], tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    server, kubeconfig = api
    write_key_pair(tmp_path / "other.crt", tmp_path / "other.key", "other")
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["certificate-authority"] = str(tmp_path / "other.crt")
    kubeconfig.write_text(yaml.safe_dump(config))
    with pytest.raises(KubernetesApiError):
        from_kubeconfig(kubeconfig).get_object(POLICIES, timeout=2)
    assert server.requests == []


def test_a_token_file_is_read_at_each_request(api: tuple[FakeApi, Path], tmp_path: Path) -> None:
    server, kubeconfig = api
    token_file = tmp_path / "token"
    token_file.write_text("stale\n")
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"tokenFile": "token"}  # relative to the kubeconfig
    kubeconfig.write_text(yaml.safe_dump(config))
    client = from_kubeconfig(kubeconfig)
    with pytest.raises(KubernetesApiError, match="HTTP 401 Unauthorized"):
        client.get_object(POLICIES, timeout=2)
    token_file.write_text(TOKEN + "\n")  # rotated
    assert client.get_object(POLICIES, timeout=2) is not None


def test_unreachable_api_raises() -> None:
    client = KubeApi("https://127.0.0.1:1")
    with pytest.raises(KubernetesApiError, match="127.0.0.1:1: GET /api"):
        client.get_object("/api/v1/namespaces", timeout=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("- not a mapping", "not a kubeconfig"),
        ("apiVersion: v1", "no current-context"),
        ("current-context: x\ncontexts: []", "no context named 'x' .contexts: none."),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'http://insecure'}}]",
            "must be an https:// URL",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://a'}}]\n"
            "users: [{name: u, user: {auth-provider: {name: gcp}}}]",
            "auth-provider credentials .gcp. are not supported",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://a', "
            "certificate-authority: missing.crt}}]",
            "cannot load its TLS certificates",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://a', "
            "certificate-authority-data: abc}}]",
            "cannot load its TLS certificates or keys: certificate-authority-data is not base64",
        ),
    ],
)
def test_bad_kubeconfigs_are_named(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(config)
    with pytest.raises(UsageError, match=message) as raised:
        from_kubeconfig(path)
    assert str(path) in str(raised.value)


def test_a_missing_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        from_kubeconfig(tmp_path / "missing")


def test_outside_a_cluster_there_is_no_in_cluster_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert kube.in_cluster() is None
