"""The one module that talks to the Kubernetes API: credentials, a pooled HTTPS client, errors.

The webhook reads decision context through it (:mod:`webhook.lookups`) and ``bundle publish``
writes ConfigMaps through it (:mod:`bundles.configmap`). Access comes from a kubeconfig's current
context (server CA as file or data, ``insecure-skip-tls-verify``, client certificates as files or
data, bearer tokens inline or in a ``tokenFile``) or from a pod's service account. Exec and
auth-provider plugins are not supported. Only ``https://`` servers are accepted, so credentials
never travel in the clear; TLS 1.2 is the minimum.

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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
import yaml

from edgepolicy.errors import EdgepolicyError, UsageError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
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


class KubeApi:
    """A pooled, keep-alive HTTPS client of one Kubernetes API server.

    Safe to share between threads. ``clock`` and ``sleep`` are the time functions used for
    deadlines and 429 waits.
    """

    def __init__(
        self,
        server: str,
        *,
        ssl_context: ssl.SSLContext | None,
        token: str | None = None,
        token_file: Path | None = None,
        maxsize: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._server = server.rstrip("/")
        self._token = token
        self._token_file = token_file
        self._clock = clock
        self._sleep = sleep
        self._pool = urllib3.PoolManager(
            maxsize=maxsize, block=False, retries=False, ssl_context=ssl_context
        )

    @property
    def server(self) -> str:
        """The API server URL."""
        return self._server

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    def request(
        self, method: str, path: str, *, timeout: float, body: Mapping[str, Any] | None = None
    ) -> ApiResponse:
        """Send ``method path`` (with ``body`` as JSON) and return the answer, whatever its
        status, all within ``timeout`` seconds. A 429 is retried after its ``Retry-After``
        (shortened to fit) while time for another attempt remains; after that it is returned.

        Raises:
            KubernetesApiError: the server is unreachable, the TLS handshake fails, the
                service-account token is unreadable or the time ran out.
        """
        deadline = self._clock() + timeout
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        while True:
            response = self._send(method, path, payload, deadline - self._clock())
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
        if response.status != 200:
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

    def _headers(self, with_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if with_body:
            headers["Content-Type"] = "application/json"
        token = self._token
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

    def _send(self, method: str, path: str, payload: bytes | None, timeout: float) -> ApiResponse:
        try:
            response = self._pool.request(
                method,
                self._server + path,
                body=payload,
                headers=self._headers(payload is not None),
                timeout=urllib3.Timeout(total=max(timeout, 0.001)),
            )
        except urllib3.exceptions.HTTPError as error:
            raise KubernetesApiError(
                f"Kubernetes API at {self._server}: {method} {path}: {error}"
            ) from error
        return ApiResponse(response.status, response.data, response.headers.get("Retry-After", ""))


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


def _named(entries: Any, list_name: str, name: str, where: str) -> dict[str, Any]:
    section = list_name[:-1]
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(section)
            if isinstance(value, dict):
                return value
    raise UsageError(f"{where}: no {section} named {name!r} in {list_name}")


def _pem(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """Return the PEM bytes of ``key`` given inline (``<key>-data``, base64) or as a file
    relative to ``base``; None when absent.

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
        return (base / str(section[key])).read_bytes()
    return None


def from_kubeconfig(path: Path) -> KubeApi:
    """Return a client for the current context of a kubeconfig file.

    Raises:
        UsageError: the file is unreadable, its current context is incomplete, its server is not
            an https:// URL, its credentials are a plugin, or its certificates do not load.
    """
    where = f"kubeconfig {path}"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise UsageError(f"{where}: cannot read it: {error}") from error
    if not isinstance(config, Mapping):
        raise UsageError(f"{where}: not a kubeconfig (expected a mapping)")
    context_name = config.get("current-context")
    if not context_name:
        raise UsageError(f"{where}: no current-context")
    context = _named(config.get("contexts"), "contexts", str(context_name), where)
    cluster = _named(config.get("clusters"), "clusters", str(context.get("cluster")), where)
    user_name = context.get("user")
    user = _named(config.get("users"), "users", str(user_name), where) if user_name else {}
    if user.get("exec") or user.get("auth-provider"):
        raise UsageError(f"{where}: exec and auth-provider credentials are not supported")
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise UsageError(f"{where}: cluster server must be an https:// URL, got {server!r}")
    base = path.parent
    try:
        ca = _pem(cluster, "certificate-authority", base)
        ssl_context = client_ssl_context(
            ca_data=ca.decode("ascii") if ca else None,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            cert_pem=_pem(user, "client-certificate", base),
            key_pem=_pem(user, "client-key", base),
        )
    except (OSError, ValueError, ssl.SSLError) as error:
        raise UsageError(f"{where}: cannot load its TLS certificates or keys: {error}") from error
    token_file = base / str(user["tokenFile"]) if user.get("tokenFile") else None
    token = str(user["token"]) if user.get("token") else None
    return KubeApi(server, ssl_context=ssl_context, token=token, token_file=token_file)


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
    try:
        ssl_context = client_ssl_context(ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot load the service-account CA: {error}") from error
    return KubeApi(f"https://{host}:{port}", ssl_context=ssl_context, token_file=token_file)


def kubeconfig_path(explicit: str | None) -> Path:
    """Return the kubeconfig a command line tool uses: ``--kubeconfig``, else the first file
    of ``$KUBECONFIG``, else ``~/.kube/config``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    return Path.home() / ".kube" / "config"
