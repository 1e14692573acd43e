"""The one module that talks to the Kubernetes API: credentials, a pooled HTTPS client, errors.

The webhook reads decision context through it (:mod:`edgepolicy.webhook.lookups`) and ``bundle
publish`` writes ConfigMaps through it (:mod:`edgepolicy.bundles.configmap`). Access comes from a
context of the kubeconfig files kubectl reads (:mod:`edgepolicy.kubeconfig`: server CA as file or
data, ``insecure-skip-tls-verify``, ``tls-server-name``, an http(s) ``proxy-url``, client
certificates as files or data, bearer tokens inline or in a ``tokenFile``, exec credential plugins
through
:mod:`edgepolicy.credential_plugin`) or from a pod's service account. auth-provider entries are
refused, as by kubectl. Only ``https://`` servers are accepted, so credentials never travel in
the clear; TLS 1.2 is the minimum.

Every call has a total timeout. An HTTP 429 (the API server's storage is still initializing right
after a CRD is created or the server restarted) is retried after its ``Retry-After``, shortened so
the call still ends within its timeout. Tokens are sent, never logged or put in messages.
"""

from __future__ import annotations

import base64
import json
import math
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import urllib3

from edgepolicy import kubeconfig
from edgepolicy.credential_plugin import (
    CredentialPlugin,
    CredentialPluginError,
    PluginConfig,
    PluginCredential,
    exec_cluster_info,
)
from edgepolicy.errors import EdgepolicyError, UsageError
from edgepolicy.kubeconfig import KubeconfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
UNAUTHORIZED = 401
TOO_MANY_REQUESTS = 429
CONFLICT = 409
GONE = 410
# Wait when a 429 has no usable Retry-After, and the least time worth another attempt.
_DEFAULT_RETRY_SECONDS = 0.1
_MIN_ATTEMPT_SECONDS = 0.05


class KubernetesApiError(EdgepolicyError):
    """The Kubernetes API could not be reached, timed out or refused a request."""


class ConflictError(KubernetesApiError):
    """The API server refused a write with 409: the object exists already (create) or changed
    since it was read (update)."""


@dataclass(frozen=True)
class ApiResponse:
    """An answer of the API server: its HTTP status, body and ``Retry-After`` header."""

    status: int
    body: bytes
    retry_after: str = ""

    @property
    def message(self) -> str:
        """The ``message`` of the API server's Status body, else the start of the body."""
        try:
            status = json.loads(self.body)
        except ValueError:
            return self.body[:200].decode("utf-8", "replace").strip()
        return str(status.get("message") or "") if isinstance(status, dict) else ""


@dataclass(frozen=True)
class TlsSettings:
    """How the client checks the API server and proves itself: trusted CA (PEM data or file;
    default: the system's), ``insecure`` (no verification), ``server_name`` (the name sent as
    SNI and checked in the server's certificate instead of the URL's host) and a client
    certificate and key (PEM)."""

    ca_pem: bytes | None = None
    ca_file: str | None = None
    insecure: bool = False
    server_name: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    def context(
        self, cert_pem: bytes | None = None, key_pem: bytes | None = None
    ) -> ssl.SSLContext:
        """Return an SSL context presenting ``cert_pem``/``key_pem`` (default: the settings').

        Raises:
            ssl.SSLError, ValueError, OSError: a certificate or key cannot be loaded.
        """
        return client_ssl_context(
            ca_file=self.ca_file,
            ca_data=self.ca_pem.decode("ascii") if self.ca_pem else None,
            insecure=self.insecure,
            cert_pem=cert_pem or self.cert_pem,
            key_pem=key_pem or self.key_pem,
        )


class KubeApi:
    """A pooled, keep-alive HTTPS client of one Kubernetes API server.

    Credentials are a bearer ``token``, a ``token_file`` read at each request (bound tokens
    rotate), the client certificate of ``tls``, or an exec credential ``plugin`` whose credential
    is kept until it expires and renewed once when the server answers 401 (the request is then
    sent again). ``proxy_url`` is an http:// or https:// proxy the connections tunnel through.
    Safe to share between threads. ``clock`` and ``sleep`` are the time functions used for
    deadlines and 429 waits.
    """

    def __init__(
        self,
        server: str,
        *,
        tls: TlsSettings | None = None,
        token: str | None = None,
        token_file: Path | None = None,
        plugin: CredentialPlugin | None = None,
        proxy_url: str | None = None,
        maxsize: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Build the connection pool.

        Raises:
            ssl.SSLError, ValueError, OSError: the CA, certificate or key of ``tls`` does not
                load.
        """
        self._server = server.rstrip("/")
        self._tls = tls or TlsSettings()
        self._token = token
        self._token_file = token_file
        self._plugin = plugin
        self._proxy_url = proxy_url
        self._maxsize = maxsize
        self._clock = clock
        self._sleep = sleep
        self._pool_lock = threading.Lock()
        self._pool_cert: bytes | None = None
        self._pool = self._new_pool(None, None)

    @property
    def server(self) -> str:
        """The API server URL."""
        return self._server

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    def authenticate(self) -> None:
        """Obtain the credentials now (run the exec plugin, if any), so that a broken plugin
        shows at start-up rather than at the first request.

        Raises:
            KubernetesApiError: the plugin cannot run or returns no credential.
        """
        if self._plugin is not None:
            self._credential(self._plugin)

    def request(
        self, method: str, path: str, *, timeout: float, body: Mapping[str, Any] | None = None
    ) -> ApiResponse:
        """Send ``method path`` (with ``body`` as JSON) and return the answer, whatever its
        status, all within ``timeout`` seconds. A 429 is retried after its ``Retry-After``
        (shortened to fit) while time for another attempt remains; after that it is returned.
        A 401 to an exec plugin's credential runs the plugin again and resends the request
        once with the new credential.

        Raises:
            KubernetesApiError: the server is unreachable, the TLS handshake fails, the
                service-account token is unreadable, the exec plugin fails or the time ran out.
        """
        deadline = self._clock() + timeout
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        renewed = False
        while True:
            response, credential = self._send(method, path, payload, deadline - self._clock())
            if response.status == UNAUTHORIZED and credential is not None and not renewed:
                assert self._plugin is not None  # a credential comes from the plugin
                renewed = True
                if self._credential(self._plugin, credential) is not credential:
                    continue
            if response.status != TOO_MANY_REQUESTS:
                return response
            wait = min(
                _retry_seconds(response.retry_after),
                deadline - self._clock() - _MIN_ATTEMPT_SECONDS,
            )
            if wait < 0:
                return response
            self._sleep(wait)

    def get_object(self, path: str, *, timeout: float) -> dict[str, Any] | None:
        """GET ``path`` within ``timeout`` seconds; return the JSON object, or None for 404.

        Raises:
            KubernetesApiError: as :meth:`request`, or any status but 200 and 404 (naming the
                path, the status and the API server's message), or a body that is not a JSON
                object.
        """
        response = self.request("GET", path, timeout=timeout)
        if response.status == 404:
            return None
        return _json_object(response, path)

    def list_items(
        self, path: str, *, timeout: float, limit: int = 500, restarts: int = 3
    ) -> list[dict[str, Any]]:
        """Return every item of the collection at ``path``, read in pages of ``limit`` items
        (``limit`` and ``continue`` query parameters, as kubectl and client-go's pager do), each
        page within ``timeout`` seconds. A collection the server does not know (404: a CRD that
        is not installed) is empty.

        When the server answers 410 Gone (the ``continue`` token expired: the snapshot it
        points into was compacted), the items read so far are dropped and the list starts
        again from the first page, up to ``restarts`` times, so the result is always one
        consistent snapshot and never a mix of two.

        Raises:
            KubernetesApiError: as :meth:`request`, any other status but 200, a body that is
                not a list, or the list expired more than ``restarts`` times.
        """
        separator = "&" if "?" in path else "?"
        expired = 0
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = f"{separator}limit={limit}"
            if token:
                query += f"&continue={quote(token, safe='')}"
            response = self.request("GET", path + query, timeout=timeout)
            if response.status == GONE and token:
                expired += 1
                if expired > restarts:
                    raise KubernetesApiError(
                        f"Kubernetes API {path}: the list expired {expired} times while it was "
                        f"read (HTTP 410 {response.message}); the collection changes faster "
                        "than it can be read"
                    )
                items, token = [], ""
                continue
            if response.status == 404 and not token:
                return []
            page = _json_object(response, path)
            found = page.get("items")
            if not isinstance(found, list):
                raise KubernetesApiError(f"Kubernetes API {path}: response is not a list")
            items.extend(item for item in found if isinstance(item, dict))
            metadata = page.get("metadata")
            token = str(metadata.get("continue") or "") if isinstance(metadata, dict) else ""
            if not token:
                return items

    def create_object(
        self, path: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        """POST ``body`` to the collection ``path`` and return the stored object.

        Raises:
            ConflictError: an object of that name already exists (409).
            KubernetesApiError: as :meth:`request`, or any other status but 201 and 200.
        """
        response = self.request("POST", path, timeout=timeout, body=body)
        if response.status == CONFLICT:
            raise ConflictError(f"Kubernetes API {path}: HTTP 409 {response.message}".rstrip())
        return _json_object(response, path, ok=(200, 201))

    def replace_object(
        self, path: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any] | None:
        """PUT ``body`` (with the ``metadata.resourceVersion`` it was read at) to ``path`` and
        return the stored object, or None when the object no longer exists (404).

        Raises:
            ConflictError: the object changed since it was read (409): read it again.
            KubernetesApiError: as :meth:`request`, or any other status but 200.
        """
        response = self.request("PUT", path, timeout=timeout, body=body)
        if response.status == 404:
            return None
        if response.status == CONFLICT:
            raise ConflictError(f"Kubernetes API {path}: HTTP 409 {response.message}".rstrip())
        return _json_object(response, path)

    def replace_status(
        self, path: str, body: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any] | None:
        """Write ``body``'s ``status`` through the status subresource of the object at ``path``
        (PUT ``path/status``: the API server keeps the stored spec, whatever ``body`` holds),
        and return the stored object, or None when it no longer exists.

        Raises:
            ConflictError: the object changed since ``body`` was read (409).
            KubernetesApiError: as :meth:`replace_object`.
        """
        return self.replace_object(path.rstrip("/") + "/status", body, timeout=timeout)

    def read_scale(self, path: str, *, timeout: float) -> dict[str, Any] | None:
        """Read the ``autoscaling/v1`` Scale of the workload at ``path`` (GET ``path/scale``),
        or None when the workload no longer exists.

        Raises:
            KubernetesApiError: as :meth:`get_object`.
        """
        return self.get_object(path.rstrip("/") + "/scale", timeout=timeout)

    def replace_scale(
        self, path: str, scale: Mapping[str, Any], *, timeout: float
    ) -> dict[str, Any] | None:
        """Write ``scale`` (a Scale read by :meth:`read_scale`, with its resourceVersion)
        through the scale subresource of the workload at ``path`` and return the stored Scale,
        or None when the workload no longer exists. Only ``spec.replicas`` is written: the
        API server keeps the rest of the workload.

        Raises:
            ConflictError: the workload changed since ``scale`` was read (409).
            KubernetesApiError: as :meth:`replace_object`.
        """
        return self.replace_object(path.rstrip("/") + "/scale", scale, timeout=timeout)

    def _new_pool(self, cert_pem: bytes | None, key_pem: bytes | None) -> urllib3.PoolManager:
        options: dict[str, Any] = {
            "maxsize": self._maxsize,
            "block": False,
            "retries": False,
            "ssl_context": self._tls.context(cert_pem, key_pem),
        }
        if self._tls.server_name:
            options["server_hostname"] = self._tls.server_name
        if self._proxy_url is None:
            return urllib3.PoolManager(**options)
        proxy = urllib3.util.parse_url(self._proxy_url)
        headers = None
        if proxy.auth:
            user, _, password = proxy.auth.partition(":")
            headers = urllib3.util.make_headers(
                proxy_basic_auth=f"{unquote(user)}:{unquote(password)}"
            )
        bare = proxy._replace(auth=None).url
        return urllib3.ProxyManager(bare, proxy_headers=headers, **options)

    def _credential(
        self, plugin: CredentialPlugin, refused: PluginCredential | None = None
    ) -> PluginCredential:
        """Return the plugin's kept credential, or a renewed one after ``refused`` got a 401."""
        try:
            return plugin.current() if refused is None else plugin.refresh(refused)
        except CredentialPluginError as error:
            raise KubernetesApiError(f"Kubernetes API at {self._server}: {error}") from error

    def _pool_for(self, credential: PluginCredential | None) -> urllib3.PoolManager:
        """Return the pool presenting the credential's client certificate; a new certificate
        gets a new pool (the old connections are closed, as client-go does on rotation)."""
        if credential is None or credential.cert_pem == self._pool_cert:
            return self._pool
        with self._pool_lock:
            if credential.cert_pem != self._pool_cert:
                try:
                    pool = self._new_pool(credential.cert_pem, credential.key_pem)
                except (OSError, ValueError, ssl.SSLError) as error:
                    raise KubernetesApiError(
                        f"Kubernetes API at {self._server}: the exec plugin's client "
                        f"certificate or key does not load: {error}"
                    ) from error
                old, self._pool, self._pool_cert = self._pool, pool, credential.cert_pem
                old.clear()
            return self._pool

    def _headers(self, with_body: bool, credential: PluginCredential | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if with_body:
            headers["Content-Type"] = "application/json"
        token = credential.token if credential is not None else self._token
        if self._token_file is not None:
            # Bound service-account tokens rotate on disk; read the current one.
            try:
                token = self._token_file.read_text().strip()
            except OSError as error:
                raise KubernetesApiError(
                    f"cannot read the service-account token {self._token_file}: {error.strerror}"
                ) from error
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(
        self, method: str, path: str, payload: bytes | None, timeout: float
    ) -> tuple[ApiResponse, PluginCredential | None]:
        credential = self._credential(self._plugin) if self._plugin is not None else None
        pool = self._pool_for(credential)
        try:
            response = pool.request(
                method,
                self._server + path,
                body=payload,
                headers=self._headers(payload is not None, credential),
                timeout=urllib3.Timeout(total=max(timeout, 0.001)),
            )
        except urllib3.exceptions.HTTPError as error:
            raise KubernetesApiError(
                f"Kubernetes API at {self._server}: {method} {path}: {error}"
            ) from error
        answer = ApiResponse(
            response.status, response.data, response.headers.get("Retry-After", "")
        )
        return answer, credential


def _json_object(
    response: ApiResponse, path: str, *, ok: tuple[int, ...] = (200,)
) -> dict[str, Any]:
    """Return the JSON object of a successful answer.

    Raises:
        KubernetesApiError: the status is not one of ``ok`` (naming the path, the status and
            the API server's message), or the body is not a JSON object.
    """
    if response.status not in ok:
        raise KubernetesApiError(
            f"Kubernetes API {path}: HTTP {response.status} {response.message}".rstrip()
        )
    try:
        document = json.loads(response.body)
    except ValueError as error:
        raise KubernetesApiError(f"Kubernetes API {path}: response is not JSON") from error
    if not isinstance(document, dict):
        raise KubernetesApiError(f"Kubernetes API {path}: response is not a JSON object")
    return document


def _retry_seconds(retry_after: str) -> float:
    """Return the seconds a 429 asks to wait: its ``Retry-After`` in seconds, else a short
    default."""
    try:
        seconds = float(retry_after)
    except ValueError:
        return _DEFAULT_RETRY_SECONDS
    if not math.isfinite(seconds):
        return _DEFAULT_RETRY_SECONDS
    return max(seconds, _DEFAULT_RETRY_SECONDS)


def client_ssl_context(
    *,
    ca_file: str | None = None,
    ca_data: str | None = None,
    insecure: bool = False,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
) -> ssl.SSLContext:
    """Return a client SSL context (TLS 1.2 minimum) trusting the given CA (default: the
    system's) and presenting the given client certificate.

    Raises:
        ssl.SSLError, ValueError, OSError: a certificate or key cannot be loaded.
    """
    context = ssl.create_default_context(cafile=ca_file, cadata=ca_data)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_pem is not None and key_pem is not None:
        # ssl only loads client certificates from files: use a private file, removed at once.
        with tempfile.TemporaryDirectory(prefix="edgepolicy-kube-") as directory:
            cert_path = Path(directory) / "client.pem"
            key_path = Path(directory) / "client-key.pem"
            for path, content in ((cert_path, cert_pem), (key_path, key_pem)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(content)
            context.load_cert_chain(str(cert_path), str(key_path))
    return context


def _pem(section: Mapping[str, Any], key: str) -> bytes | None:
    """Return the PEM bytes of ``key`` given inline (``<key>-data``, base64) or as a file;
    None when absent.

    Raises:
        ValueError: the inline data is not base64 (the message names the field).
        OSError: the file cannot be read.
    """
    if section.get(f"{key}-data"):
        try:
            return base64.b64decode(str(section[f"{key}-data"]))
        except ValueError as error:
            raise ValueError(f"{key}-data is not base64: {error}") from error
    if section.get(key):
        return Path(str(section[key])).read_bytes()
    return None


def _proxy(cluster: Mapping[str, Any], where: str) -> str | None:
    """Return the cluster's ``proxy-url`` (http:// or https://), or None.

    Raises:
        KubeconfigError: the URL is malformed or names another kind of proxy.
    """
    value = cluster.get("proxy-url")
    if not value:
        return None
    text = str(value)
    try:
        url = urllib3.util.parse_url(text)
    except urllib3.exceptions.LocationParseError as error:
        raise KubeconfigError(f"{where}: proxy-url is not a URL") from error
    shown = url._replace(auth=None).url
    if url.scheme in ("socks4", "socks4a", "socks5", "socks5h"):
        raise KubeconfigError(
            f"{where}: proxy-url {shown}: SOCKS proxies are not supported "
            "(http:// and https:// proxies are)"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise KubeconfigError(
            f"{where}: proxy-url must be an http:// or https:// URL, got {shown!r}"
        )
    return text


def from_kubeconfig(
    path: Path | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> KubeApi:
    """Return a client for a context (default: the current one) of the kubeconfig kubectl would
    read: ``path`` alone, else the merged ``$KUBECONFIG`` files, else ``~/.kube/config`` (see
    :mod:`edgepolicy.kubeconfig`).

    The cluster's CA (file or data), ``insecure-skip-tls-verify``, ``tls-server-name`` and
    ``proxy-url`` are honoured; the user's client certificate (file or data), token, ``tokenFile``
    or ``exec`` plugin (used only when the user has no token or certificate, as in kubectl).
    The plugin first runs at the first request (or :meth:`KubeApi.authenticate`).

    Raises:
        KubeconfigError: the files cannot be read or merged; the context, its cluster or user is
            missing; the server is not an https:// URL; the proxy is not http(s); the user is an
            auth-provider or a malformed exec plugin; or certificates do not load.
    """
    access = kubeconfig.select(kubeconfig.load(path, environ), context)
    cluster, user = access.cluster, access.user
    where = f"{access.where}: context {access.context!r}"
    if user.get("auth-provider"):
        provider = user["auth-provider"]
        name = provider.get("name") if isinstance(provider, Mapping) else None
        raise KubeconfigError(
            f"{where}: user {access.user_name!r}: auth-provider credentials ({name}) are not "
            "supported (kubectl dropped them too); use the provider's exec plugin"
        )
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise KubeconfigError(f"{where}: cluster server must be an https:// URL, got {server!r}")
    server_name = cluster.get("tls-server-name")
    if server_name is not None and not isinstance(server_name, str):
        raise KubeconfigError(f"{where}: tls-server-name must be a string")
    proxy_url = _proxy(cluster, where)
    try:
        ca = _pem(cluster, "certificate-authority")
        tls = TlsSettings(
            ca_pem=ca,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            server_name=server_name or None,
            cert_pem=_pem(user, "client-certificate"),
            key_pem=_pem(user, "client-key"),
        )
    except (OSError, ValueError) as error:
        raise KubeconfigError(
            f"{where}: cannot load its TLS certificates or keys: {error}"
        ) from error
    token_file = Path(str(user["tokenFile"])) if user.get("tokenFile") else None
    token = str(user["token"]) if user.get("token") else None
    plugin = None
    if user.get("exec") and not (token or token_file or tls.cert_pem):
        section = user["exec"]
        if not isinstance(section, Mapping):
            raise KubeconfigError(f"{where}: user {access.user_name!r}: exec must be a map")
        cluster_info = exec_cluster_info(cluster, ca, cluster.get("extensions"))
        try:
            config = PluginConfig.parse(str(access.user_name), section, cluster_info)
        except CredentialPluginError as error:
            raise KubeconfigError(f"{access.where}: {error}") from error
        plugin = CredentialPlugin(config)
    try:
        return KubeApi(
            server, tls=tls, token=token, token_file=token_file, plugin=plugin, proxy_url=proxy_url
        )
    except (OSError, ValueError, ssl.SSLError) as error:
        raise KubeconfigError(
            f"{where}: cannot load its TLS certificates or keys: {error}"
        ) from error


def in_cluster() -> KubeApi | None:
    """Return a client using the pod's service account, or None when not running in a cluster.

    Raises:
        UsageError: the service account's CA cannot be loaded.
    """
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = SERVICE_ACCOUNT_DIR / "token"
    if not host or not token_file.is_file():
        return None
    if ":" in host:
        host = f"[{host}]"
    tls = TlsSettings(ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    try:
        return KubeApi(f"https://{host}:{port}", tls=tls, token_file=token_file)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot load the service-account CA: {error}") from error
