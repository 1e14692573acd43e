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
    api: KubeApi, namespace: str, name: str, archive: bytes, revision: str
) -> None:
    """Create or replace ConfigMap ``namespace/name`` holding the bundle.

    Raises:
        BundleError: the bundle is too big, or the API server is unreachable or refuses.
    """
    body = configmap_body(namespace, name, archive, revision)
    collection = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"
    try:
        response = api.request(
            "PUT", f"{collection}/{quote(name, safe='')}", body=body, timeout=TIMEOUT_SECONDS
        )
        if response.status == 404:
            response = api.request("POST", collection, body=body, timeout=TIMEOUT_SECONDS)
    except KubernetesApiError as error:
        raise BundleError(f"cannot publish ConfigMap {namespace}/{name}: {error}") from error
    if response.status >= 300:
        raise BundleError(
            f"Kubernetes API refused ConfigMap {namespace}/{name}: HTTP {response.status}: "
            f"{response.message}"
        )
