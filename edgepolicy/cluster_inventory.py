"""What an audit reads from the cluster: every stored workload and HPA, and the FinOpsPolicies.

Each collection is listed in pages through the one Kubernetes client (:meth:`KubeApi.list_items`),
cluster-wide or in one namespace. Items come back as the API stores them minus what the Rego
never reads (``managedFields``, kubectl's last-applied configuration, which can be as large as
the object), with the ``apiVersion`` and ``kind`` that list items omit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from edgepolicy.kube import KubeApi
from edgepolicy.manifests import POLICY_API_VERSION

# Bulky metadata the Rego never reads; dropped to keep OPA's input small.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Collection:
    """A listed kind: its apiVersion, kind and resource name."""

    api_version: str
    kind: str
    resource: str

    def path(self, namespace: str | None = None) -> str:
        """The collection's API path, cluster-wide or in ``namespace``."""
        root = "/api" if "/" not in self.api_version else "/apis"
        scope = f"/namespaces/{quote(namespace, safe='')}" if namespace else ""
        return f"{root}/{self.api_version}{scope}/{self.resource}"

    def object_path(self, namespace: str, name: str) -> str:
        """The API path of one object of this kind."""
        return f"{self.path(namespace)}/{quote(name, safe='')}"


# The kinds the policies judge (docs/policies.md), in the versions the API server serves today.
WORKLOADS: tuple[Collection, ...] = (
    Collection("v1", "Pod", "pods"),
    Collection("apps/v1", "Deployment", "deployments"),
    Collection("apps/v1", "StatefulSet", "statefulsets"),
    Collection("apps/v1", "ReplicaSet", "replicasets"),
    Collection("apps/v1", "DaemonSet", "daemonsets"),
    Collection("batch/v1", "Job", "jobs"),
    Collection("batch/v1", "CronJob", "cronjobs"),
    Collection("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
)
FINOPS_POLICIES = Collection(POLICY_API_VERSION, "FinOpsPolicy", "finopspolicies")
_BY_KIND = {collection.kind: collection for collection in (*WORKLOADS, FINOPS_POLICIES)}


def collection_of(kind: str) -> Collection | None:
    """The listed collection of ``kind``, or None for a kind an audit does not list."""
    return _BY_KIND.get(kind)


def stored_path(obj: Mapping[str, Any]) -> str:
    """The API path of a listed object (``/apis/apps/v1/namespaces/NS/deployments/NAME``).

    Raises:
        KeyError: the object's kind is not one an audit lists.
    """
    metadata = obj.get("metadata") or {}
    collection = _BY_KIND[str(obj.get("kind"))]
    return collection.object_path(str(metadata.get("namespace") or ""), str(metadata.get("name")))


def slim(obj: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """Return a stored object with apiVersion and kind set (list items omit them) and bulky
    metadata dropped; the webhook's lookups slim what they read with it too."""
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


def list_collection(
    api: KubeApi,
    collection: Collection,
    *,
    namespace: str | None = None,
    page_size: int = 500,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Return every stored object of ``collection`` (in ``namespace``, else all), slimmed.

    Raises:
        KubernetesApiError: a page could not be read (see :meth:`KubeApi.list_items`).
    """
    items = api.list_items(collection.path(namespace), timeout=timeout, limit=page_size)
    return [slim(item, collection.api_version, collection.kind) for item in items]


def list_workloads(
    api: KubeApi, *, namespace: str | None = None, page_size: int = 500, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Return every stored workload and HPA (:data:`WORKLOADS`), kind by kind.

    Raises:
        KubernetesApiError: a page could not be read.
    """
    objects: list[dict[str, Any]] = []
    for collection in WORKLOADS:
        objects.extend(
            list_collection(
                api, collection, namespace=namespace, page_size=page_size, timeout=timeout
            )
        )
    return objects
