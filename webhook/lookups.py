"""The webhook's decision context from the cluster: lookups through the shared Kubernetes
client (:mod:`edgepolicy.kube`), cached briefly.

The webhook asks the cluster for the FinOpsPolicy and ModelPolicy objects stored in a request's
namespace (so ``kubectl apply``-ed policies are enforced; validated against the shipped CRD once
per stored version, by ``uid`` and ``resourceVersion``), the workload an HPA's
``scaleTargetRef`` names, the HPAs of a namespace (those scaling an admitted workload), as
``edgepolicy check`` relates the objects of a run, and the ConfigMap a pod names in
``models.apexlogic.com/signature-configmap`` (read only when a ModelPolicy could use it).
Access is optional: without a kubeconfig or a service account,
:func:`connect` returns None and no lookups happen. Answers (including "not found") are cached
for a few seconds per worker; failures raise :class:`edgepolicy.kube.KubernetesApiError` and are
never cached.

Only the workload kinds the policies understand as HPA targets (:data:`SCALABLE_KINDS`, group
``apps``) are looked up: any other scale target (a custom scalable resource) is no context, not
an error, so the shipped RBAC needs no access to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edgepolicy import kube
from edgepolicy.cluster_inventory import slim
from edgepolicy.kube import KubeApi, KubernetesApiError
from edgepolicy.validated_policies import ValidatedPolicies, validate_policies

POLICY_API_VERSION = "policy.apexlogic.com/v1alpha1"
HPA_API_VERSION = "autoscaling/v2"
WORKLOAD_API_VERSION = "apps/v1"
# The workloads an HPA can target that the policies understand (rego/lib/workload), all in
# the apps group, with their resource names.
SCALABLE_KINDS: Mapping[str, str] = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "ReplicaSet": "replicasets",
}
# How many validated policy versions a worker remembers (a few KiB each).
_MAX_VALIDATED = 4096


class TtlCache:
    """A small thread-safe cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, max_entries: int = 1024) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: str, load: Callable[[], Any]) -> Any:
        """Return the fresh value stored under ``key``, else ``load()`` stored (whatever
        ``load`` raises is raised and nothing is stored)."""
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


class ClusterLookups:
    """Reads decision context from one Kubernetes API server, caching answers for ``cache_ttl``
    seconds."""

    def __init__(self, api: KubeApi, *, cache_ttl: float = 5.0) -> None:
        self._api = api
        self._cache = TtlCache(cache_ttl)
        # Validation results by (uid, resourceVersion): a stored policy is validated once per
        # version, not again each time the list is read.
        self._by_version: dict[tuple[str, str], ValidatedPolicies] = {}
        self._lock = threading.Lock()

    def _validated(self, obj: Mapping[str, Any], namespace: str) -> ValidatedPolicies:
        metadata = obj.get("metadata") or {}
        key = (metadata.get("uid"), metadata.get("resourceVersion"))
        if not (isinstance(key[0], str) and key[0] and isinstance(key[1], str) and key[1]):
            return validate_policies([obj], namespace_default=namespace)
        version = (key[0], key[1])
        with self._lock:
            found = self._by_version.get(version)
        if found is None:
            found = validate_policies([obj], namespace_default=namespace)
            with self._lock:
                if len(self._by_version) >= _MAX_VALIDATED:
                    self._by_version.clear()
                self._by_version[version] = found
        return found

    def _list(self, path: str, api_version: str, kind: str, timeout: float) -> list[dict[str, Any]]:
        document = self._api.get_object(path, timeout=timeout)
        items = (document or {}).get("items") or []
        return [slim(item, api_version, kind) for item in items if isinstance(item, Mapping)]

    def _items(self, path: str, api_version: str, kind: str, timeout: float) -> Any:
        return self._cache.get_or_load(path, lambda: self._list(path, api_version, kind, timeout))

    def _policies(
        self, namespace: str, kind: str, resource: str, timeout: float
    ) -> ValidatedPolicies:
        path = f"/apis/{POLICY_API_VERSION}/namespaces/{quote(namespace, safe='')}/{resource}"

        def load() -> ValidatedPolicies:
            objs = self._list(path, POLICY_API_VERSION, kind, timeout)
            return ValidatedPolicies.joined(self._validated(obj, namespace) for obj in objs)

        result: ValidatedPolicies = self._cache.get_or_load(path, load)
        return result

    def finops_policies(self, namespace: str, *, timeout: float) -> ValidatedPolicies:
        """Return the FinOpsPolicy objects stored in ``namespace`` (none if the CRD is absent),
        validated against the shipped CRD (once per stored version).

        Raises:
            KubernetesApiError: the lookup failed or timed out.
        """
        return self._policies(namespace, "FinOpsPolicy", "finopspolicies", timeout)

    def model_policies(self, namespace: str, *, timeout: float) -> ValidatedPolicies:
        """Return the ModelPolicy objects stored in ``namespace`` (none if the CRD is absent),
        validated against the shipped CRD (once per stored version).

        Raises:
            KubernetesApiError: the lookup failed or timed out.
        """
        return self._policies(namespace, "ModelPolicy", "modelpolicies", timeout)

    def configmap(self, namespace: str, name: str, *, timeout: float) -> dict[str, Any] | None:
        """Return the ConfigMap ``name`` of ``namespace``, or None if it does not exist.

        Raises:
            KubernetesApiError: the lookup failed or timed out.
        """
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps/{quote(name, safe='')}"

        def load() -> dict[str, Any] | None:
            document = self._api.get_object(path, timeout=timeout)
            return None if document is None else slim(document, "v1", "ConfigMap")

        result: dict[str, Any] | None = self._cache.get_or_load(path, load)
        return result

    def autoscalers(self, namespace: str, *, timeout: float) -> list[dict[str, Any]]:
        """Return the autoscaling/v2 HorizontalPodAutoscalers in ``namespace``.

        Raises:
            KubernetesApiError: the lookup failed or timed out.
        """
        path = (
            f"/apis/{HPA_API_VERSION}/namespaces/{quote(namespace, safe='')}"
            "/horizontalpodautoscalers"
        )
        result: list[dict[str, Any]] = self._items(
            path, HPA_API_VERSION, "HorizontalPodAutoscaler", timeout
        )
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
            document = self._api.get_object(path, timeout=timeout)
            return None if document is None else slim(document, WORKLOAD_API_VERSION, kind)

        result: dict[str, Any] | None = self._cache.get_or_load(path, load)
        return result


def connect(
    kubeconfig: Path | None,
    *,
    context: str | None = None,
    cache_ttl: float = 5.0,
    authenticate: bool = False,
) -> ClusterLookups | None:
    """Return the lookups the webhook uses: through the given kubeconfig (or, with only a
    ``context``, the kubeconfig files kubectl reads), else the in-cluster service account, else
    None (no lookups). With ``authenticate``, credentials are obtained at once (an exec plugin
    runs), so broken ones fail here.

    Raises:
        UsageError: the kubeconfig or service-account files cannot be used.
        KubernetesApiError: with ``authenticate``, the exec plugin failed.
    """
    if kubeconfig is None and context is None:
        api = kube.in_cluster()
    else:
        api = kube.from_kubeconfig(kubeconfig, context=context)
    if api is not None and authenticate:
        api.authenticate()
    return None if api is None else ClusterLookups(api, cache_ttl=cache_ttl)
