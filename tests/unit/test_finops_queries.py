"""PromQL built for a policy's selector, and the Prometheus API's answers read exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edgepolicy.errors import InputError
from edgepolicy.finops_queries import pod_matchers
from edgepolicy.promql_client import PrometheusError, _samples


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


def test_samples_are_exact_decimals_without_nan() -> None:
    body = (
        b'{"status":"success","data":{"resultType":"vector","result":['
        b'{"metric":{"pod":"a"},"value":[1,"3.9000000000000004"]},'
        b'{"metric":{"pod":"b"},"value":[1,"NaN"]}]}}'
    )

    samples = _samples(200, body, "http://p")

    assert [(s.labels, s.value) for s in samples] == [({"pod": "a"}, Decimal("3.9000000000000004"))]


def test_an_api_error_is_named() -> None:
    body = b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}'

    with pytest.raises(PrometheusError, match="HTTP 400 bad_data: parse error at char 3"):
        _samples(400, body, "http://p")
