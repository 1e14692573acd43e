"""Publish a bundle into a ConfigMap through the Kubernetes API (kube-mgmt style loading).

The archive goes into ``binaryData["bundle.tar.gz"]``; the revision is recorded in an
annotation. The ConfigMap is replaced when it exists and created otherwise. Credentials come
from a kubeconfig (its current context): bearer token or client certificate, with the cluster's
CA. ConfigMaps hold at most 1 MiB; bigger bundles are refused before anything is sent.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
import yaml

from edgepolicy.errors import BundleError, UsageError

MAX_CONFIGMAP_BYTES = 1024 * 1024
BUNDLE_KEY = "bundle.tar.gz"
REVISION_ANNOTATION = "policy.apexlogic.com/bundle-revision"
_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to authenticate to it (never printed)."""

    server: str
    ssl_context: ssl.SSLContext | None
    token: str | None


def _section(config: Mapping[str, Any], list_name: str, name: str, where: str) -> dict[str, Any]:
    for entry in config.get(list_name) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(list_name[:-1])
            if isinstance(value, dict):
                return value
    raise UsageError(f"{where}: no {list_name[:-1]} named {name!r} in {list_name}")


def _pem(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        return (base / str(section[key])).read_bytes()
    return None


def load_kubeconfig(path: Path) -> KubeAccess:
    """Return how to reach the API server of the kubeconfig's current context.

    Raises:
        UsageError: the kubeconfig is missing, unreadable or lacks what is needed.
    """
    where = f"kubeconfig {path}"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise UsageError(f"{where}: cannot read it: {error}") from error
    if not isinstance(config, dict) or not config.get("current-context"):
        raise UsageError(f"{where}: no current-context")
    context = _section(config, "contexts", str(config["current-context"]), where)
    cluster = _section(config, "clusters", str(context.get("cluster")), where)
    user = _section(config, "users", str(context.get("user")), where)
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise UsageError(f"{where}: cluster server must be an http(s) URL, got {server!r}")
    base = path.parent
    try:
        context_ssl = _ssl_context(cluster, user, base) if server.startswith("https://") else None
    except (OSError, ssl.SSLError, ValueError) as error:
        raise UsageError(f"{where}: cannot load its TLS certificates or keys: {error}") from error
    token = user.get("token")
    return KubeAccess(server, context_ssl, str(token) if token else None)


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    ca = _pem(cluster, "certificate-authority", base)
    if ca is not None:
        context.load_verify_locations(cadata=ca.decode("ascii"))
    cert = _pem(user, "client-certificate", base)
    key = _pem(user, "client-key", base)
    if cert is not None and key is not None:
        with tempfile.TemporaryDirectory(prefix="edgepolicy-kube-") as tmp:
            cert_file, key_file = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
            for file, content in ((cert_file, cert), (key_file, key)):
                file.touch(mode=0o600)
                file.write_bytes(content)
            context.load_cert_chain(cert_file, key_file)
    return context


def kubeconfig_path(explicit: str | None) -> Path:
    """Return the kubeconfig to use: ``--kubeconfig``, ``$KUBECONFIG``, else ``~/.kube/config``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    return Path.home() / ".kube" / "config"


def configmap_body(namespace: str, name: str, archive: bytes, revision: str) -> dict[str, Any]:
    """Return the ConfigMap object carrying ``archive``.

    Raises:
        BundleError: the archive exceeds what a ConfigMap can hold.
    """
    if len(archive) > MAX_CONFIGMAP_BYTES:
        raise BundleError(
            f"bundle is {len(archive)} bytes but a ConfigMap holds at most "
            f"{MAX_CONFIGMAP_BYTES} bytes (1 MiB); publish to dir: or http(s): instead"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "edgepolicy"},
            "annotations": {REVISION_ANNOTATION: revision},
        },
        "binaryData": {BUNDLE_KEY: base64.b64encode(archive).decode("ascii")},
    }


def publish_configmap(
    access: KubeAccess, namespace: str, name: str, archive: bytes, revision: str
) -> None:
    """Create or replace ConfigMap ``namespace/name`` holding the bundle.

    Raises:
        BundleError: the bundle is too big, or the API server is unreachable or refuses.
    """
    body = json.dumps(configmap_body(namespace, name, archive, revision)).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if access.token:
        headers["Authorization"] = f"Bearer {access.token}"
    pool = urllib3.PoolManager(ssl_context=access.ssl_context, retries=False, timeout=_TIMEOUT)
    collection = f"{access.server}/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"
    try:
        response = pool.request(
            "PUT", f"{collection}/{quote(name, safe='')}", body=body, headers=headers
        )
        if response.status == 404:
            response = pool.request("POST", collection, body=body, headers=headers)
    except urllib3.exceptions.HTTPError as error:
        raise BundleError(f"cannot reach the Kubernetes API at {access.server}: {error}") from error
    finally:
        pool.clear()
    if response.status >= 300:
        raise BundleError(
            f"Kubernetes API refused ConfigMap {namespace}/{name}: HTTP {response.status}: "
            f"{_reason(response.data)}"
        )


def _reason(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    return str(status.get("message", "")) if isinstance(status, dict) else ""
