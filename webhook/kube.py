"""The webhook's only access to the Kubernetes API: decision context lookups, cached briefly.

The webhook asks the cluster for the FinOpsPolicy objects stored in a request's namespace (so
``kubectl apply``-ed policies are enforced), the workload an HPA's ``scaleTargetRef`` names, and
the HPAs of a namespace (those scaling an admitted workload), as ``edgepolicy check`` relates
the objects of a run.
Access is plain HTTPS (pooled urllib3) with the in-cluster service account or a kubeconfig; it is
optional: without either, :func:`connect` returns None and no lookups happen. Answers (including
"not found") are cached for a few seconds per worker; failures raise
:class:`KubernetesApiError` and are never cached. An HTTP 429 (the API server's storage is still
initializing after a CRD was created or the server restarted) is retried after its
``Retry-After``, shortened so the lookup still ends within its timeout.

Only the workload kinds the policies understand as HPA targets (:data:`SCALABLE_KINDS`, group
``apps``) are looked up: any other scale target (a custom scalable resource) is no context, not
an error, so the shipped RBAC needs no access to it.
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
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
import yaml

from edgepolicy.errors import EdgepolicyError, UsageError

POLICY_API = "/apis/policy.apexlogic.com/v1alpha1"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Bulky metadata the Rego never reads; dropped to keep OPA's input small.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# The workloads an HPA can target that the policies understand (rego/lib/workload), all in
# the apps group, with their resource names.
SCALABLE_KINDS: Mapping[str, str] = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "ReplicaSet": "replicasets",
}
WORKLOAD_API_VERSION = "apps/v1"
TOO_MANY_REQUESTS = 429
# Wait when a 429 has no usable Retry-After, and the least time worth a new attempt.
_DEFAULT_RETRY_SECONDS = 0.1
_MIN_ATTEMPT_SECONDS = 0.05


class KubernetesApiError(EdgepolicyError):
    """The Kubernetes API could not be reached, timed out or refused a lookup."""


class _TtlCache:
    """A small thread-safe cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, max_entries: int = 1024) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: str, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                return entry[1]
        value = load()
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + self._ttl, value)
        return value


def _slim(obj: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """Return the object with apiVersion/kind set (lists omit them) and bulky metadata dropped."""
    copy = dict(obj)
    copy.setdefault("apiVersion", api_version)
    copy.setdefault("kind", kind)
    metadata = dict(copy.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping) and _LAST_APPLIED in annotations:
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    copy["metadata"] = metadata
    return copy


class KubeClient:
    """Reads decision context from one Kubernetes API server."""

    def __init__(
        self,
        server: str,
        *,
        ssl_context: ssl.SSLContext | None,
        token: str | None = None,
        token_file: Path | None = None,
        cache_ttl: float = 5.0,
        maxsize: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._server = server.rstrip("/")
        self._token = token
        self._token_file = token_file
        self._cache = _TtlCache(cache_ttl)
        self._pool = urllib3.PoolManager(
            maxsize=maxsize, block=False, retries=False, ssl_context=ssl_context
        )

    @property
    def server(self) -> str:
        """The API server URL."""
        return self._server

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self._token
        if self._token_file is not None:
            # Bound service-account tokens rotate on disk; read the current one.
            try:
                token = self._token_file.read_text().strip()
            except OSError as error:
                raise KubernetesApiError(
                    f"cannot read the service-account token {self._token_file}: {error}"
                ) from error
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _get(self, path: str, timeout: float) -> dict[str, Any] | None:
        """GET a path within ``timeout`` seconds; return the JSON object, or None for 404.

        A 429 is retried after its ``Retry-After`` (shortened to fit ``timeout``) as long as
        time for another attempt remains.

        Raises:
            KubernetesApiError: connection failure, timeout, or an HTTP error other than 404
                (a 429 once no time for another attempt is left).
        """
        deadline = self._clock() + timeout
        while True:
            response = self._send(path, deadline - self._clock())
            if response.status != TOO_MANY_REQUESTS:
                break
            wait = min(_retry_after(response), deadline - self._clock() - _MIN_ATTEMPT_SECONDS)
            if wait < 0:
                raise KubernetesApiError(
                    f"Kubernetes API {path}: HTTP 429 {_reason(response.data)} "
                    "(still refused when the lookup's time ran out)"
                )
            self._sleep(wait)
        if response.status == 404:
            return None
        if response.status != 200:
            raise KubernetesApiError(
                f"Kubernetes API {path}: HTTP {response.status} {_reason(response.data)}"
            )
        try:
            document = json.loads(response.data)
        except ValueError as error:
            raise KubernetesApiError(f"Kubernetes API {path}: response is not JSON") from error
        if not isinstance(document, dict):
            raise KubernetesApiError(f"Kubernetes API {path}: response is not a JSON object")
        return document

    def _send(self, path: str, timeout: float) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(
                "GET",
                self._server + path,
                headers=self._headers(),
                timeout=urllib3.Timeout(total=max(timeout, 0.001)),
            )
        except urllib3.exceptions.HTTPError as error:
            raise KubernetesApiError(f"Kubernetes API {path}: {error}") from error

    def finops_policies(self, namespace: str, *, timeout: float) -> list[dict[str, Any]]:
        """Return the FinOpsPolicy objects stored in ``namespace`` (none if the CRD is absent).

        Raises:
            KubernetesApiError: the lookup failed or timed out.
        """
        path = f"{POLICY_API}/namespaces/{quote(namespace, safe='')}/finopspolicies"

        def load() -> list[dict[str, Any]]:
            document = self._get(path, timeout)
            items = (document or {}).get("items") or []
            return [
                _slim(item, "policy.apexlogic.com/v1alpha1", "FinOpsPolicy")
                for item in items
                if isinstance(item, Mapping)
            ]

        result: list[dict[str, Any]] = self._cache.get_or_load(path, load)
        return result

    def autoscalers(self, namespace: str, *, timeout: float) -> list[dict[str, Any]]:
        """Return the autoscaling/v2 HorizontalPodAutoscalers in ``namespace``.

        Raises:
            KubernetesApiError: the lookup failed or timed out.
        """
        path = (
            f"/apis/autoscaling/v2/namespaces/{quote(namespace, safe='')}/horizontalpodautoscalers"
        )

        def load() -> list[dict[str, Any]]:
            document = self._get(path, timeout)
            items = (document or {}).get("items") or []
            return [
                _slim(item, "autoscaling/v2", "HorizontalPodAutoscaler")
                for item in items
                if isinstance(item, Mapping)
            ]

        result: list[dict[str, Any]] = self._cache.get_or_load(path, load)
        return result

    def workload(
        self, namespace: str, kind: str, name: str, *, timeout: float
    ) -> dict[str, Any] | None:
        """Return the apps/v1 workload of ``kind`` (one of :data:`SCALABLE_KINDS`) named
        ``name``, or None if it does not exist.

        Raises:
            KubernetesApiError: ``kind`` is not a scalable workload kind, or the lookup failed
                or timed out.
        """
        plural = SCALABLE_KINDS.get(kind)
        if plural is None:
            raise KubernetesApiError(f"{kind!r} is not a workload kind the webhook looks up")
        path = (
            f"/apis/{WORKLOAD_API_VERSION}/namespaces/{quote(namespace, safe='')}"
            f"/{plural}/{quote(name, safe='')}"
        )

        def load() -> dict[str, Any] | None:
            document = self._get(path, timeout)
            return None if document is None else _slim(document, WORKLOAD_API_VERSION, kind)

        result: dict[str, Any] | None = self._cache.get_or_load(path, load)
        return result


def _retry_after(response: urllib3.BaseHTTPResponse) -> float:
    """Return the seconds a 429 asks to wait (its ``Retry-After`` in seconds, else a short
    default)."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return _DEFAULT_RETRY_SECONDS
    if not math.isfinite(seconds):
        return _DEFAULT_RETRY_SECONDS
    return max(seconds, _DEFAULT_RETRY_SECONDS)


def _reason(body: bytes) -> str:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return ""
    return str(message) if message else ""


def _client_ssl_context(
    *,
    ca_file: str | None = None,
    ca_data: str | None = None,
    insecure: bool = False,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
) -> ssl.SSLContext:
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


def _named(entries: Any, name: str, section: str, where: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(section)
            if isinstance(value, dict):
                return value
    raise UsageError(f"{where}: no {section} named {name!r}")


def _pem(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    if section.get(f"{key}-data"):
        return base64.b64decode(str(section[f"{key}-data"]))
    if section.get(key):
        return (base / str(section[key])).read_bytes()
    return None


def from_kubeconfig(path: Path, *, cache_ttl: float = 5.0) -> KubeClient:
    """Return a client for the current context of a kubeconfig file.

    Supports server CA (file or data), ``insecure-skip-tls-verify``, client certificates (file or
    data) and bearer tokens (inline or ``tokenFile``). Exec and auth-provider plugins are not
    supported.

    Raises:
        UsageError: the file is unreadable or its current context is incomplete.
    """
    where = f"kubeconfig {path}"
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"cannot read {where}: {error}") from error
    if not isinstance(config, Mapping):
        raise UsageError(f"{where}: not a kubeconfig (expected a mapping)")
    context_name = config.get("current-context")
    if not context_name:
        raise UsageError(f"{where}: no current-context")
    context = _named(config.get("contexts"), str(context_name), "context", where)
    cluster = _named(config.get("clusters"), str(context.get("cluster")), "cluster", where)
    user_name = context.get("user")
    user = _named(config.get("users"), str(user_name), "user", where) if user_name else {}
    if user.get("exec") or user.get("auth-provider"):
        raise UsageError(f"{where}: exec and auth-provider credentials are not supported")
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise UsageError(f"{where}: cluster server must be an https:// URL, got {server!r}")
    base = path.parent
    try:
        ca = _pem(cluster, "certificate-authority", base)
        ssl_context = _client_ssl_context(
            ca_data=ca.decode() if ca else None,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            cert_pem=_pem(user, "client-certificate", base),
            key_pem=_pem(user, "client-key", base),
        )
    except (OSError, ValueError, ssl.SSLError) as error:
        raise UsageError(f"{where}: cannot load its certificates: {error}") from error
    token_file = Path(base / str(user["tokenFile"])) if user.get("tokenFile") else None
    token = str(user["token"]) if user.get("token") else None
    return KubeClient(
        server, ssl_context=ssl_context, token=token, token_file=token_file, cache_ttl=cache_ttl
    )


def in_cluster(*, cache_ttl: float = 5.0) -> KubeClient | None:
    """Return a client using the pod's service account, or None when not running in a cluster."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = SERVICE_ACCOUNT_DIR / "token"
    if not host or not token_file.is_file():
        return None
    if ":" in host:
        host = f"[{host}]"
    try:
        ssl_context = _client_ssl_context(ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot load the service-account CA: {error}") from error
    return KubeClient(
        f"https://{host}:{port}",
        ssl_context=ssl_context,
        token_file=token_file,
        cache_ttl=cache_ttl,
    )


def connect(kubeconfig: Path | None, *, cache_ttl: float = 5.0) -> KubeClient | None:
    """Return the client the webhook uses: the given kubeconfig, else in-cluster, else None.

    Raises:
        UsageError: the kubeconfig or service-account files cannot be used.
    """
    if kubeconfig is not None:
        return from_kubeconfig(kubeconfig, cache_ttl=cache_ttl)
    return in_cluster(cache_ttl=cache_ttl)
