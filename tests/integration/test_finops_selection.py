"""The PromQL matchers of a targetWorkloadSelector select, in a real Prometheus's
``kube_pod_labels``, exactly the pods the Rego library's ``selector.matches`` (real OPA)
selects: Kubernetes' label selector semantics, decided once, translated, never re-decided."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_support import ROOT, OpenMetricsWriter, PrometheusServer, steps

from edgepolicy.prometheus_api import PrometheusClient
from edgepolicy.promql_selectors import selector_matchers

AT = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
NAMESPACE = "sel"
# Label values are never empty here: Prometheus cannot tell an empty label from an absent one
# (documented in edgepolicy.promql_selectors).
PODS: dict[str, dict[str, str]] = {
    "p1": {"app": "web", "tier": "prod", "app.kubernetes.io/name": "llm"},
    "p2": {"app": "web", "tier": "dev"},
    "p3": {"app": "web.v2", "tier": "prod"},
    "p4": {"app": "webxv2"},
    "p5": {},
    "p6": {"app": "api", "example.com/team": "vision", "tier": "staging"},
}
SELECTORS: list[Any] = [
    {},
    None,
    {"matchLabels": None, "matchExpressions": None},
    {"matchLabels": {"app": "web"}},
    {"matchLabels": {"app.kubernetes.io/name": "llm"}},
    {"matchLabels": {"example.com/team": "vision"}},
    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web.v2"]}]},
    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]},
    {"matchExpressions": [{"key": "app", "operator": "In", "values": None}]},
    {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web", "api"]}]},
    {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": None}]},
    {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
    {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
    {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["dev"]}],
    },
    {
        "matchExpressions": [
            {"key": "tier", "operator": "Exists"},
            {"key": "tier", "operator": "NotIn", "values": ["prod"]},
        ]
    },
]


def _write(writer: OpenMetricsWriter) -> None:
    writer.family("kube_pod_labels")
    start, end = AT.timestamp() - 1800, AT.timestamp() + 30
    for namespace in (NAMESPACE, "elsewhere"):
        for pod, labels in PODS.items():
            series = {"namespace": namespace, "pod": pod}
            series.update({"label_" + k.replace(".", "_").replace("/", "_"): v
                           for k, v in labels.items()})  # fmt: skip
            writer.series(series, ((t, 1) for t in steps(start, end, 30)))


def rego_selections(opa_binary: Path) -> list[set[str]]:
    """For each selector, the pods the Rego library selects."""
    cases = {"selectors": SELECTORS, "pods": PODS}
    query = (
        "[{p | some p, labels in input.pods; data.edgepolicy.lib.selector.matches(s, labels)}"
        " | some s in input.selectors]"
    )
    done = subprocess.run(
        [str(opa_binary), "eval", "--format", "json", "--stdin-input",
         "-d", str(ROOT / "rego/lib/selector/selector.rego"), query],
        input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    result = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    return [set(pods) for pods in result]


@pytest.fixture(scope="module")
def prometheus(prometheus_factory: Any) -> PrometheusServer:
    server: PrometheusServer = prometheus_factory(_write)
    return server


def test_promql_selects_what_rego_selects(prometheus: PrometheusServer, opa_binary: Path) -> None:
    expected = rego_selections(opa_binary)
    assert expected[0] == set(PODS) and expected[1] == set()  # the OPA side really ran
    client = PrometheusClient(prometheus.url)
    try:
        for selector, wanted in zip(SELECTORS, expected, strict=True):
            matchers = selector_matchers(selector, NAMESPACE, "sel/test")
            got: set[str] = set()
            if matchers is not None:
                samples = client.query(f"kube_pod_labels{{{', '.join(matchers)}}}", AT)
                assert {s["metric"]["namespace"] for s in samples} <= {NAMESPACE}
                got = {s["metric"]["pod"] for s in samples}
            assert got == wanted, (selector, matchers)
    finally:
        client.close()
