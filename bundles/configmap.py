"""Publish a bundle into a ConfigMap through the Kubernetes API (kube-mgmt style loading).

The archive goes into ``binaryData["bundle.tar.gz"]``; the revision is recorded in an
annotation. The ConfigMap is replaced when it exists and created otherwise, through the shared
Kubernetes client (:mod:`edgepolicy.kube`, credentials from a kubeconfig). ConfigMaps hold at
most 1 MiB; bigger bundles are refused before anything is sent.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from edgepolicy.errors import BundleError
from edgepolicy.kube import KubeApi, KubernetesApiError

MAX_CONFIGMAP_BYTES = 1024 * 1024
BUNDLE_KEY = "bundle.tar.gz"
REVISION_ANNOTATION = "policy.apexlogic.com/bundle-revision"
# Seconds one create or replace may take, waits for a re-initializing API server included.
TIMEOUT_SECONDS = 60.0


def configmap_body(
    namespace: str, name: str, archive: bytes, revision: str, resource_version: str | None = None
) -> dict[str, Any]:
    """Return the ConfigMap object carrying ``archive`` (replacing only ``resource_version``).

    Raises:
        BundleError: the archive exceeds what a ConfigMap can hold.
    """
    if len(archive) > MAX_CONFIGMAP_BYTES:
        raise BundleError(
            f"bundle is {len(archive)} bytes but a ConfigMap holds at most "
            f"{MAX_CONFIGMAP_BYTES} bytes (1 MiB); publish to dir: or http(s): instead"
        )
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "edgepolicy"},
        "annotations": {REVISION_ANNOTATION: revision},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "binaryData": {BUNDLE_KEY: base64.b64encode(archive).decode("ascii")},
    }


def _path(namespace: str, name: str | None = None) -> str:
    collection = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"
    return collection if name is None else f"{collection}/{quote(name, safe='')}"


def current_bundle(api: KubeApi, namespace: str, name: str) -> tuple[bytes | None, str | None]:
    """Return the bundle ConfigMap ``namespace/name`` holds now and its ``resourceVersion``.

    The bundle is None when the ConfigMap does not exist or holds no bundle.

    Raises:
        BundleError: the API server is unreachable or refuses, or the bundle is not base64.
    """
    try:
        found = api.get_object(_path(namespace, name), timeout=TIMEOUT_SECONDS)
    except KubernetesApiError as error:
        raise BundleError(f"cannot read ConfigMap {namespace}/{name}: {error}") from error
    if found is None:
        return None, None
    version = found.get("metadata", {}).get("resourceVersion")
    encoded = (found.get("binaryData") or {}).get(BUNDLE_KEY)
    if not isinstance(encoded, str):
        return None, version if isinstance(version, str) else None
    try:
        archive = base64.b64decode(encoded, validate=True)
    except ValueError as error:
        raise BundleError(
            f"ConfigMap {namespace}/{name}: binaryData[{BUNDLE_KEY!r}] is not base64"
        ) from error
    return archive, version if isinstance(version, str) else None


def publish_configmap(
    api: KubeApi,
    namespace: str,
    name: str,
    archive: bytes,
    revision: str,
    *,
    resource_version: str | None = None,
) -> None:
    """Create or replace ConfigMap ``namespace/name`` holding the bundle.

    With ``resource_version`` (read with :func:`current_bundle`), only that version is
    replaced: a ConfigMap changed in between makes the API server answer 409, which fails.

    Raises:
        BundleError: the bundle is too big, or the API server is unreachable or refuses.
    """
    body = configmap_body(namespace, name, archive, revision, resource_version)
    try:
        response = api.request("PUT", _path(namespace, name), body=body, timeout=TIMEOUT_SECONDS)
        if response.status == 404:
            body = configmap_body(namespace, name, archive, revision)
            response = api.request("POST", _path(namespace), body=body, timeout=TIMEOUT_SECONDS)
    except KubernetesApiError as error:
        raise BundleError(f"cannot publish ConfigMap {namespace}/{name}: {error}") from error
    if response.status >= 300:
        raise BundleError(
            f"Kubernetes API refused ConfigMap {namespace}/{name}: HTTP {response.status}: "
            f"{response.message}"
        )
