"""PromQL built for a policy's selector: the pods come from the one selector translation."""

from __future__ import annotations

import pytest

from edgepolicy.errors import InputError
from edgepolicy.finops_queries import gpus_held, selected_pods


def test_selected_pods_use_the_selector_translation() -> None:
    selector = {
        "matchLabels": {"app.kubernetes.io/name": 'in"ference'},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gpu.large", "gpu"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }

    assert selected_pods("ai", selector, "p") == (
        'max by (namespace, pod) (kube_pod_labels{namespace="ai", '
        'label_app_kubernetes_io_name="in\\"ference", label_tier=~"gpu\\\\.large|gpu", '
        'label_env!~"dev", label_team!="", label_legacy=""})'
    )


@pytest.mark.parametrize(
    "selector",
    [
        None,
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "Near"}]},
    ],
)
def test_a_selector_that_selects_nothing_matches_no_series(selector: object) -> None:
    assert selected_pods("ai", selector, "p") == (  # type: ignore[arg-type]
        'max by (namespace, pod) (kube_pod_labels{namespace="ai", pod=""})'
    )


def test_a_malformed_requirement_names_the_policy() -> None:
    with pytest.raises(InputError, match="p.yaml: FinOpsPolicy ai/x: .*matchExpressions\\[0\\]"):
        selected_pods("ai", {"matchExpressions": [{"operator": "In"}]}, "p.yaml: FinOpsPolicy ai/x")


def test_gpus_held_counts_running_pods_only() -> None:
    held = gpus_held("ai", "PODS")
    assert 'kube_pod_status_phase{phase="Running", namespace="ai"} == 1' in held
    assert held.endswith("* on (namespace, pod) PODS)")
