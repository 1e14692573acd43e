"""PromQL built for a policy's selector."""

from __future__ import annotations

import pytest

from edgepolicy.errors import InputError
from edgepolicy.finops_queries import pod_matchers


def test_selector_becomes_kube_pod_labels_matchers() -> None:
    selector = {
        "matchLabels": {"app.kubernetes.io/name": 'in"ference'},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gpu.large", "gpu"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }

    assert pod_matchers("ai", selector, "p") == (
        'namespace="ai", label_app_kubernetes_io_name="in\\"ference", '
        'label_tier=~"gpu\\\\.large|gpu", label_env!~"dev", label_team!="", label_legacy=""'
    )


def test_unknown_operator_names_the_policy() -> None:
    with pytest.raises(InputError, match="p.yaml: FinOpsPolicy ai/x: .*'Near'"):
        pod_matchers(
            "ai",
            {"matchExpressions": [{"key": "a", "operator": "Near"}]},
            "p.yaml: FinOpsPolicy ai/x",
        )
