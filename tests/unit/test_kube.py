"""The shared Kubernetes API client against a small stand-in API server over real TLS."""

from __future__ import annotations

import base64
import datetime
import json
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from plugin_support import FakePlugin

from edgepolicy import kube
from edgepolicy.errors import UsageError
from edgepolicy.kube import KubeApi, KubernetesApiError, from_kubeconfig

KeyPairWriter = Callable[..., object]

TOKEN = "t0ken-never-logged"
V1 = "client.authentication.k8s.io/v1"
POLICIES = "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/finopspolicies"
ROUTES: dict[str, tuple[int, Any]] = {
    POLICIES: (200, {"items": [{"metadata": {"name": "budget"}}]}),
    "/api/v1/namespaces/broken/configmaps": (500, {"message": "etcd is sad"}),
    "/api/v1/namespaces/list/configmaps": (200, ["not", "an", "object"]),
}


class FakeApi(ThreadingHTTPServer):
    requests: list[tuple[str, str, Any]]
    server_names: list[str | None]  # SNI of each TLS handshake
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
    server.server_names = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _context: server.server_names.append(name)
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


# --- kubeconfig features: exec plugins, tls-server-name, proxy-url, contexts, merged files -----


def _edit(kubeconfig: Path, change: Callable[[dict[str, Any]], None]) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    change(config)
    kubeconfig.write_text(yaml.safe_dump(config))


def _credential(token: str) -> dict[str, Any]:
    status = {"token": token}
    return {"output": {"apiVersion": V1, "kind": "ExecCredential", "status": status}}


def test_an_exec_plugin_token_is_used_and_kept(
    api: tuple[FakeApi, Path], fake_plugin: FakePlugin
) -> None:
    server, kubeconfig = api
    fake_plugin.answer(_credential(TOKEN))
    _edit(kubeconfig, lambda c: c["users"][0].update(user={"exec": fake_plugin.exec_section()}))
    client = from_kubeconfig(kubeconfig)
    assert fake_plugin.calls() == []  # the plugin runs at the first request, not before
    assert client.get_object(POLICIES, timeout=5) is not None
    assert client.get_object(POLICIES, timeout=5) is not None
    assert len(fake_plugin.calls()) == 1
    assert len(server.requests) == 2


def test_a_401_runs_the_plugin_again_and_resends_once(
    api: tuple[FakeApi, Path], fake_plugin: FakePlugin
) -> None:
    server, kubeconfig = api
    fake_plugin.answer(_credential("revoked"), _credential(TOKEN))
    _edit(kubeconfig, lambda c: c["users"][0].update(user={"exec": fake_plugin.exec_section()}))
    client = from_kubeconfig(kubeconfig)
    assert client.get_object(POLICIES, timeout=5) is not None
    assert len(fake_plugin.calls()) == 2
    assert [path for _, path, _ in server.requests] == [POLICIES, POLICIES]
    # A plugin that keeps returning a refused token: one renewal, then the 401 is the answer.
    fake_plugin.answer(_credential("revoked"))
    client = from_kubeconfig(kubeconfig)
    with pytest.raises(KubernetesApiError, match="HTTP 401"):
        client.get_object(POLICIES, timeout=5)
    assert len(fake_plugin.calls()) == 4


def test_a_failing_plugin_is_a_kubernetes_api_error(
    api: tuple[FakeApi, Path], fake_plugin: FakePlugin
) -> None:
    server, kubeconfig = api
    fake_plugin.answer({"exit": 1})
    _edit(kubeconfig, lambda c: c["users"][0].update(user={"exec": fake_plugin.exec_section()}))
    client = from_kubeconfig(kubeconfig)
    with pytest.raises(KubernetesApiError, match="of user 'u': exited with status 1"):
        client.authenticate()
    assert server.requests == []


def test_a_token_wins_over_an_exec_plugin(
    api: tuple[FakeApi, Path], fake_plugin: FakePlugin
) -> None:
    _, kubeconfig = api
    fake_plugin.answer(_credential("never-used"))
    _edit(kubeconfig, lambda c: c["users"][0]["user"].update(exec=fake_plugin.exec_section()))
    assert from_kubeconfig(kubeconfig).get_object(POLICIES, timeout=5) is not None
    assert fake_plugin.calls() == []


def test_a_malformed_exec_section_names_the_kubeconfig(
    api: tuple[FakeApi, Path], fake_plugin: FakePlugin
) -> None:
    _, kubeconfig = api
    section = fake_plugin.exec_section(interactiveMode="Sometimes")
    _edit(kubeconfig, lambda c: c["users"][0].update(user={"exec": section}))
    with pytest.raises(UsageError, match=f"kubeconfig {kubeconfig}: .*'Sometimes'"):
        from_kubeconfig(kubeconfig)


@pytest.fixture
def named_api(tmp_path: Path, write_key_pair: KeyPairWriter) -> Iterator[tuple[FakeApi, Path]]:
    """A TLS API server on 127.0.0.1 whose certificate is for the name api.edge.internal only,
    and a kubeconfig (token) for it without tls-server-name."""
    cert, key = tmp_path / "named.crt", tmp_path / "named.key"
    write_key_pair(cert, key, "api.edge.internal", dns_name="api.edge.internal")
    server = FakeApi(("127.0.0.1", 0), _Handler)
    server.requests, server.initializing, server.server_names = [], {}, []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _context: server.server_names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    kubeconfig = tmp_path / "named.kubeconfig"
    cluster = {"server": f"https://127.0.0.1:{server.server_address[1]}"}
    cluster["certificate-authority"] = str(cert)
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "named",
                "contexts": [{"name": "named", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
            }
        )
    )
    yield server, kubeconfig
    server.shutdown()
    server.server_close()


def test_tls_server_name_is_sent_as_sni_and_checked(named_api: tuple[FakeApi, Path]) -> None:
    server, kubeconfig = named_api
    with pytest.raises(KubernetesApiError, match="(?i)certificate"):
        from_kubeconfig(kubeconfig).get_object(POLICIES, timeout=5)  # 127.0.0.1 is not its name
    _edit(kubeconfig, lambda c: c["clusters"][0]["cluster"].update({"tls-server-name": "other"}))
    with pytest.raises(KubernetesApiError, match="(?i)certificate"):
        from_kubeconfig(kubeconfig).get_object(POLICIES, timeout=5)
    assert server.requests == []
    _edit(
        kubeconfig,
        lambda c: c["clusters"][0]["cluster"].update({"tls-server-name": "api.edge.internal"}),
    )
    assert from_kubeconfig(kubeconfig).get_object(POLICIES, timeout=5) is not None
    assert server.server_names[-1] == "api.edge.internal"


class _ConnectProxy(ThreadingHTTPServer):
    tunnels: list[tuple[str, str | None]]  # (CONNECT target, Proxy-Authorization)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ConnectProxy

    def do_CONNECT(self) -> None:  # noqa: N802 - http.server's naming
        self.server.tunnels.append((self.path, self.headers.get("Proxy-Authorization")))
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=5)
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 5)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def proxy() -> Iterator[_ConnectProxy]:
    """An HTTP CONNECT proxy on loopback recording its tunnels."""
    server = _ConnectProxy(("127.0.0.1", 0), _ProxyHandler)
    server.tunnels = []
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_proxy_url_tunnels_through_the_proxy(
    api: tuple[FakeApi, Path], proxy: _ConnectProxy
) -> None:
    server, kubeconfig = api
    proxy_url = f"http://edge:p%40ss@127.0.0.1:{proxy.server_address[1]}"
    _edit(kubeconfig, lambda c: c["clusters"][0]["cluster"].update({"proxy-url": proxy_url}))
    assert from_kubeconfig(kubeconfig).get_object(POLICIES, timeout=5) is not None
    assert len(server.requests) == 1
    [(target, authorization)] = proxy.tunnels
    assert target == f"127.0.0.1:{server.server_address[1]}"
    assert authorization == "Basic " + base64.b64encode(b"edge:p@ss").decode()


@pytest.mark.parametrize(
    ("proxy_url", "message"),
    [
        ("socks5://u:secret@127.0.0.1:1080", "socks5://127.0.0.1:1080: SOCKS proxies are not"),
        ("ftp://proxy.example", "must be an http:// or https:// URL"),
    ],
)
def test_other_proxies_are_refused_by_name(
    api: tuple[FakeApi, Path], proxy_url: str, message: str
) -> None:
    _, kubeconfig = api
    _edit(kubeconfig, lambda c: c["clusters"][0]["cluster"].update({"proxy-url": proxy_url}))
    with pytest.raises(UsageError, match=message) as raised:
        from_kubeconfig(kubeconfig)
    assert "secret" not in str(raised.value)


def test_a_context_is_chosen_from_merged_kubeconfig_files(
    api: tuple[FakeApi, Path], tmp_path: Path
) -> None:
    server, kubeconfig = api
    config = yaml.safe_load(kubeconfig.read_text())
    # The first file: another current context, a cluster that does not answer, and a user of
    # the same name as the working one (the first definition wins: a wrong token).
    first = tmp_path / "first.kubeconfig"
    first.write_text(
        yaml.safe_dump(
            {
                "current-context": "elsewhere",
                "contexts": [{"name": "elsewhere", "context": {"cluster": "dead", "user": "u"}}],
                "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "other", "user": {"token": "other-token"}}],
            }
        )
    )
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{kubeconfig}"}
    with pytest.raises(KubernetesApiError, match="127.0.0.1:1"):
        from_kubeconfig(environ=environ).get_object(POLICIES, timeout=2)
    client = from_kubeconfig(environ=environ, context=config["current-context"])
    assert client.get_object(POLICIES, timeout=5) is not None
    with pytest.raises(UsageError, match="no context named 'nope'"):
        from_kubeconfig(environ=environ, context="nope")
    assert len(server.requests) == 1


class _CertApi(ThreadingHTTPServer):
    clients: list[str]  # the common name of the client certificate of each request


class _CertHandler(BaseHTTPRequestHandler):
    server: _CertApi
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        subject = dict(item[0] for item in self.connection.getpeercert()["subject"])
        self.server.clients.append(subject["commonName"])
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def test_a_renewed_plugin_certificate_is_presented_on_new_connections(
    tmp_path: Path, write_key_pair: KeyPairWriter, fake_plugin: FakePlugin
) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client-ca")])
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "client-ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert, key = tmp_path / "api.crt", tmp_path / "api.key"
    write_key_pair(cert, key, "127.0.0.1")
    server = _CertApi(("127.0.0.1", 0), _CertHandler)
    server.clients = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(tmp_path / "client-ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    expired = "2000-01-01T00:00:00Z"  # the first certificate is renewed at the next request
    answers = []
    for name, expires in (("first", expired), ("second", None)):
        pem, key_pem = _issue(ca_key, ca_name, name)
        status = {"clientCertificateData": pem, "clientKeyData": key_pem}
        if expires:
            status["expirationTimestamp"] = expires
        answers.append({"output": {"apiVersion": V1, "kind": "ExecCredential", "status": status}})
    fake_plugin.answer(*answers)
    kubeconfig = tmp_path / "kubeconfig"
    cluster = {"server": f"https://127.0.0.1:{server.server_address[1]}"}
    cluster["certificate-authority"] = str(cert)
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"exec": fake_plugin.exec_section()}}],
            }
        )
    )
    try:
        client = from_kubeconfig(kubeconfig)
        for _ in range(3):
            assert client.get_object("/api/v1/namespaces/default", timeout=5) == {}
    finally:
        server.shutdown()
        server.server_close()
    assert server.clients == ["first", "second", "second"]
    assert len(fake_plugin.calls()) == 2
