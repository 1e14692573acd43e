"""Kubernetes API lookups against a small stand-in API server over real TLS."""

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

from edgepolicy.errors import UsageError
from webhook.kube import KubeClient, KubernetesApiError, connect, from_kubeconfig

KeyPairWriter = Callable[[Path, Path, str], object]
TOKEN = "t0ken-never-logged"
POLICY = {
    "metadata": {
        "name": "budget",
        "namespace": "ai",
        "managedFields": [{"manager": "kubectl"}],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"},
    },
    "spec": {"targetWorkloadSelector": {"matchLabels": {"app": "web"}}},
}
ROUTES: dict[str, tuple[int, Any]] = {
    "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/finopspolicies": (200, {"items": [POLICY]}),
    "/apis/apps/v1/namespaces/ai/deployments/web": (200, {"metadata": {"name": "web"}}),
    "/apis/autoscaling/v2/namespaces/ai/horizontalpodautoscalers": (
        200,
        {"items": [{"metadata": {"name": "web"}, "spec": {"maxReplicas": 4}}]},
    ),
    "/apis/policy.apexlogic.com/v1alpha1/namespaces/broken/finopspolicies": (
        500,
        {"message": "etcd is sad"},
    ),
}


class FakeApi(ThreadingHTTPServer):
    requests: list[str]
    # Path -> how many more times it answers 429 "storage is (re)initializing".
    initializing: dict[str, int]


class _Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.requests.append(self.path)
        retry_after = None
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, {"message": "Unauthorized"}
        elif self.server.initializing.get(self.path, 0) > 0:
            self.server.initializing[self.path] -= 1
            status, body = 429, {"message": "storage is (re)initializing"}
            retry_after = "1"
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


def test_lists_policies_slimmed_and_typed(api: tuple[FakeApi, Path]) -> None:
    _, kubeconfig = api
    (policy,) = from_kubeconfig(kubeconfig).finops_policies("ai", timeout=2)
    assert policy["apiVersion"] == "policy.apexlogic.com/v1alpha1"
    assert policy["kind"] == "FinOpsPolicy"
    assert "managedFields" not in policy["metadata"]
    assert policy["metadata"]["annotations"] == {"keep": "me"}
    assert policy["spec"] == POLICY["spec"]


def test_answers_are_cached_for_the_ttl(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    client = from_kubeconfig(kubeconfig, cache_ttl=60)
    client.finops_policies("ai", timeout=2)
    client.finops_policies("ai", timeout=2)
    assert (
        server.requests.count("/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/finopspolicies")
        == 1
    )
    uncached = from_kubeconfig(kubeconfig, cache_ttl=0)
    uncached.finops_policies("ai", timeout=2)
    uncached.finops_policies("ai", timeout=2)
    assert len(server.requests) == 3


def test_missing_crd_or_namespace_means_no_policies(api: tuple[FakeApi, Path]) -> None:
    assert from_kubeconfig(api[1]).finops_policies("empty", timeout=2) == []


def test_workload_lookup_and_absent_workloads(api: tuple[FakeApi, Path]) -> None:
    client = from_kubeconfig(api[1])
    found = client.workload("ai", "Deployment", "web", timeout=2)
    assert found == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    assert client.workload("ai", "StatefulSet", "db", timeout=2) is None
    assert api[0].requests[-1] == "/apis/apps/v1/namespaces/ai/statefulsets/db"


def test_only_scalable_workload_kinds_are_looked_up(api: tuple[FakeApi, Path]) -> None:
    with pytest.raises(KubernetesApiError, match="'Rollout' is not a workload kind"):
        from_kubeconfig(api[1]).workload("ai", "Rollout", "web", timeout=2)
    assert api[0].requests == []


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


def _client(kubeconfig: Path, time: FakeTime) -> KubeClient:
    client = from_kubeconfig(kubeconfig, cache_ttl=0)
    client._clock, client._sleep = time.clock, time.sleep
    return client


POLICIES_PATH = "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/finopspolicies"


def test_initializing_storage_is_retried_after_retry_after(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    server.initializing[POLICIES_PATH] = 1
    time = FakeTime()
    (policy,) = _client(kubeconfig, time).finops_policies("ai", timeout=3)
    assert policy["metadata"]["name"] == "budget"
    assert time.sleeps == [1.0]  # Retry-After honoured: it fits the timeout
    assert server.requests == [POLICIES_PATH, POLICIES_PATH]


def test_retries_after_429_stay_within_the_timeout(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    server.initializing[POLICIES_PATH] = 2
    time = FakeTime()
    assert _client(kubeconfig, time).finops_policies("ai", timeout=1.0)
    # Retry-After: 1 would overrun the 1 s timeout: the waits are shortened to fit in it.
    assert len(time.sleeps) == 2 and time.now < 1.0
    assert server.requests.count(POLICIES_PATH) == 3


def test_429_until_the_timeout_runs_out_is_an_error(api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = api
    server.initializing[POLICIES_PATH] = 1000
    time = FakeTime()
    with pytest.raises(KubernetesApiError, match="HTTP 429 storage is .re.initializing"):
        _client(kubeconfig, time).finops_policies("ai", timeout=0.5)
    assert time.now <= 0.5


def test_lists_autoscalers(api: tuple[FakeApi, Path]) -> None:
    (hpa,) = from_kubeconfig(api[1]).autoscalers("ai", timeout=2)
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["spec"] == {"maxReplicas": 4}


def test_server_errors_raise_with_the_api_message(api: tuple[FakeApi, Path]) -> None:
    with pytest.raises(KubernetesApiError, match="HTTP 500 etcd is sad"):
        from_kubeconfig(api[1]).finops_policies("broken", timeout=2)


def test_an_untrusted_server_certificate_is_refused(
    api: tuple[FakeApi, Path], tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    server, kubeconfig = api
    write_key_pair(tmp_path / "other.crt", tmp_path / "other.key", "other")
    other_ca = tmp_path / "other.crt"
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["certificate-authority"] = str(other_ca)
    kubeconfig.write_text(yaml.safe_dump(config))
    with pytest.raises(KubernetesApiError):
        from_kubeconfig(kubeconfig).finops_policies("ai", timeout=2)
    assert server.requests == []


def test_unreachable_api_raises() -> None:
    client = KubeClient("https://127.0.0.1:1", ssl_context=None)
    with pytest.raises(KubernetesApiError, match="127.0.0.1:1|finopspolicies"):
        client.finops_policies("ai", timeout=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("- not a mapping", "not a kubeconfig"),
        ("apiVersion: v1", "no current-context"),
        ("current-context: x\ncontexts: []", "no context named 'x'"),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'http://insecure'}}]",
            "must be an https:// URL",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://a'}}]\n"
            "users: [{name: u, user: {exec: {command: aws}}}]",
            "exec and auth-provider",
        ),
    ],
)
def test_bad_kubeconfigs_are_named(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(config)
    with pytest.raises(UsageError, match=message) as raised:
        from_kubeconfig(path)
    assert str(path) in str(raised.value)


def test_no_kubeconfig_outside_a_cluster_means_no_lookups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert connect(None) is None
