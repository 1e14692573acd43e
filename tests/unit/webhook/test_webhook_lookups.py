"""The webhook's decision-context lookups over a stand-in for the shared Kubernetes client.

The client itself (TLS, tokens, 429 retries, errors) is tested in tests/unit/test_kube.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from edgepolicy.webhook.lookups import ClusterLookups, connect
from plugin_support import FakePlugin

from edgepolicy.errors import UsageError
from edgepolicy.kube import KubeApi, KubernetesApiError
from edgepolicy.validated_policies import NO_POLICIES

POLICY = {
    "metadata": {
        "name": "budget",
        "namespace": "ai",
        "managedFields": [{"manager": "kubectl"}],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"},
    },
    "spec": {"targetWorkloadSelector": {"matchLabels": {"app": "web"}}},
}
POLICIES = "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/finopspolicies"
OBJECTS: dict[str, dict[str, Any]] = {
    POLICIES: {"items": [POLICY]},
    "/apis/apps/v1/namespaces/ai/deployments/web": {"metadata": {"name": "web"}},
    "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/modelpolicies": {"items": [POLICY]},
    "/api/v1/namespaces/ai/configmaps/model-sig": {
        "metadata": {"name": "model-sig"},
        "data": {"signature": "{}"},
    },
    "/apis/autoscaling/v2/namespaces/ai/horizontalpodautoscalers": {
        "items": [{"metadata": {"name": "web"}, "spec": {"maxReplicas": 4}}]
    },
}


class StubApi(KubeApi):
    """Answers GETs from ``OBJECTS`` (None when absent) and remembers the paths and timeouts."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__("https://api.invalid")
        self.error = error
        self.calls: list[tuple[str, float]] = []

    def get_object(self, path: str, *, timeout: float) -> dict[str, Any] | None:
        self.calls.append((path, timeout))
        if self.error is not None:
            raise self.error
        return OBJECTS.get(path)


def test_lists_policies_slimmed_typed_and_validated() -> None:
    api = StubApi()
    validated = ClusterLookups(api).finops_policies("ai", timeout=0.7)
    assert validated.invalid == ()
    (policy,) = validated.valid
    assert policy["apiVersion"] == "policy.apexlogic.com/v1alpha1"
    assert policy["kind"] == "FinOpsPolicy"
    assert "managedFields" not in policy["metadata"]
    assert policy["metadata"]["annotations"] == {"keep": "me"}
    assert policy["spec"] == POLICY["spec"]
    assert api.calls == [(POLICIES, 0.7)]


def test_lists_model_policies_and_reads_a_configmap_by_name() -> None:
    api = StubApi()
    lookups = ClusterLookups(api)
    (policy,) = lookups.model_policies("ai", timeout=0.5).valid
    assert policy["kind"] == "ModelPolicy"
    assert policy["apiVersion"] == "policy.apexlogic.com/v1alpha1"
    configmap = lookups.configmap("ai", "model-sig", timeout=0.5)
    assert configmap is not None
    assert configmap["kind"] == "ConfigMap"
    assert configmap["data"] == {"signature": "{}"}
    assert lookups.configmap("ai", "absent", timeout=0.5) is None
    assert [path for path, _ in api.calls] == [
        "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/modelpolicies",
        "/api/v1/namespaces/ai/configmaps/model-sig",
        "/api/v1/namespaces/ai/configmaps/absent",
    ]


def test_answers_are_cached_for_the_ttl() -> None:
    api = StubApi()
    cached = ClusterLookups(api, cache_ttl=60)
    cached.finops_policies("ai", timeout=2)
    cached.finops_policies("ai", timeout=2)
    assert len(api.calls) == 1
    uncached = ClusterLookups(api, cache_ttl=0)
    uncached.finops_policies("ai", timeout=2)
    uncached.finops_policies("ai", timeout=2)
    assert len(api.calls) == 3


def test_failures_are_not_cached() -> None:
    api = StubApi(KubernetesApiError("HTTP 500"))
    lookups = ClusterLookups(api, cache_ttl=60)
    for _ in range(2):
        with pytest.raises(KubernetesApiError):
            lookups.finops_policies("ai", timeout=2)
    assert len(api.calls) == 2


def test_missing_crd_or_namespace_means_no_policies() -> None:
    assert ClusterLookups(StubApi()).finops_policies("empty", timeout=2) == NO_POLICIES


def test_workload_lookup_and_absent_workloads() -> None:
    api = StubApi()
    lookups = ClusterLookups(api)
    found = lookups.workload("ai", "Deployment", "web", timeout=2)
    assert found == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    assert lookups.workload("ai", "StatefulSet", "db", timeout=2) is None
    assert api.calls[-1][0] == "/apis/apps/v1/namespaces/ai/statefulsets/db"


def test_only_scalable_workload_kinds_are_looked_up() -> None:
    api = StubApi()
    with pytest.raises(KubernetesApiError, match="'Rollout' is not a workload kind"):
        ClusterLookups(api).workload("ai", "Rollout", "web", timeout=2)
    assert api.calls == []


def test_lists_autoscalers() -> None:
    (hpa,) = ClusterLookups(StubApi()).autoscalers("ai", timeout=2)
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["spec"] == {"maxReplicas": 4}


def test_no_kubeconfig_outside_a_cluster_means_no_lookups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert connect(None) is None


def test_a_bad_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1")
    with pytest.raises(UsageError, match="no current-context"):
        connect(path)


def test_a_context_alone_reads_the_kubeconfig_files_kubectl_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_plugin: FakePlugin
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    fake_plugin.answer({"exit": 5})
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "contexts": [{"name": "edge", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"exec": fake_plugin.exec_section()}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert connect(None, context="edge") is not None  # the plugin waits for the first lookup
    assert fake_plugin.calls() == []
    with pytest.raises(KubernetesApiError, match="user 'u': exited with status 5"):
        connect(None, context="edge", authenticate=True)  # as `serve` starts
    assert len(fake_plugin.calls()) == 1


def test_invalid_cluster_policies_come_with_their_errors_once_per_cached_answer() -> None:
    broken = {"metadata": {"name": "broken", "namespace": "ai"}, "spec": {"costLimits": {}}}
    OBJECTS["/apis/policy.apexlogic.com/v1alpha1/namespaces/lab/finopspolicies"] = {
        "items": [broken]
    }
    lookups = ClusterLookups(StubApi(), cache_ttl=60)
    validated = lookups.finops_policies("lab", timeout=2)
    assert lookups.finops_policies("lab", timeout=2) is validated
    assert validated.valid == ()
    (invalid,) = validated.invalid
    assert (invalid.namespace, invalid.name) == ("ai", "broken")
    assert [e.field for e in invalid.errors] == ["spec.targetWorkloadSelector"]


def test_a_stored_policy_version_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgepolicy.webhook.lookups as lookups_module

    calls: list[str] = []
    real = lookups_module.validate_policies

    def counting(objs: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        calls.extend(obj["metadata"]["name"] for obj in objs)
        return real(objs, **kwargs)

    monkeypatch.setattr(lookups_module, "validate_policies", counting)
    versioned = {
        "metadata": {"name": "v", "namespace": "ai", "uid": "u-1", "resourceVersion": "7"},
        "spec": {"targetWorkloadSelector": {}},
    }
    OBJECTS["/apis/policy.apexlogic.com/v1alpha1/namespaces/vers/finopspolicies"] = {
        "items": [versioned]
    }
    lookups = ClusterLookups(StubApi(), cache_ttl=0)
    first = lookups.finops_policies("vers", timeout=2)
    second = lookups.finops_policies("vers", timeout=2)
    assert first.valid == second.valid
    assert calls == ["v"]
    versioned["metadata"]["resourceVersion"] = "8"
    lookups.finops_policies("vers", timeout=2)
    assert calls == ["v", "v"]
