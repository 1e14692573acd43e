"""Selectors as PromQL matchers (their agreement with the Rego library, on a real Prometheus,
is tests/integration/test_finops_selection.py)."""

from __future__ import annotations

import pytest

from edgepolicy.errors import InputError
from edgepolicy.promql_selectors import pod_label_name, quote, selector_matchers


def test_label_names_as_kube_state_metrics_writes_them() -> None:
    assert pod_label_name("app.kubernetes.io/name") == "label_app_kubernetes_io_name"
    assert pod_label_name("tier") == "label_tier"


def test_values_are_quoted_and_regex_escaped() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    matchers = selector_matchers(
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web.v2", "api"]}]},
        "ns",
        "ns/p",
    )
    assert matchers == ['namespace="ns"', 'label_app=~"web\\\\.v2|api"']


def test_every_operator() -> None:
    selector = {
        "matchLabels": {"team": "vision"},
        "matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["dev"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "any", "operator": "NotIn", "values": None},
        ],
    }
    assert selector_matchers(selector, "ai", "ai/p") == [
        'namespace="ai"',
        'label_team="vision"',
        'label_tier!~"dev"',
        'label_gpu!=""',
        'label_legacy=""',
    ]


@pytest.mark.parametrize(
    "selector",
    [None, {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     {"matchExpressions": [{"key": "a", "operator": "Near"}]}],
)  # fmt: skip
def test_selectors_that_select_nothing(selector: object) -> None:
    assert selector_matchers(selector, "ns", "ns/p") is None


def test_an_empty_selector_selects_the_namespace() -> None:
    assert selector_matchers({}, "ns", "ns/p") == ['namespace="ns"']


def test_malformed_requirements_name_the_policy_and_field() -> None:
    with pytest.raises(
        InputError, match=r"ns/p: spec.targetWorkloadSelector.matchExpressions\[0\]"
    ):
        selector_matchers({"matchExpressions": [{"operator": "In"}]}, "ns", "ns/p")
