"""PromQL for the pods a FinOpsPolicy selects, over the standard exporters' series.

The pods are those of kube-state-metrics' ``kube_pod_labels`` (labels as ``label_<name>``,
which kube-state-metrics exports only for the keys of its ``--metric-labels-allowlist``) in the
policy's namespace whose labels match ``spec.targetWorkloadSelector``; use is cAdvisor's
``container_cpu_usage_seconds_total`` and ``container_memory_working_set_bytes``, GPUs held are
``kube_pod_container_resource_limits{resource="nvidia_com_gpu"}`` of Running pods
(``kube_pod_status_phase``), GPU activity is the DCGM exporter's ``DCGM_FI_DEV_GPU_UTIL``.
Every expression aggregates in PromQL: one instant query returns one number per question.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from edgepolicy.prometheus_api import PrometheusClient, value_of
from edgepolicy.promql_selectors import quote, selector_matchers

# The subquery resolution of the CPU and memory aggregations (the rate of CPU use spans 5m too).
STEP = "5m"
# GPU-hours are counted as GPUs held at each minute (integers, summed by Prometheus), as `finops
# report` counts them; hours are the count divided by GPU_STEPS_PER_HOUR, in exact decimals.
GPU_STEP = "60s"
GPU_STEPS_PER_HOUR = 60


def selected_pods(namespace: str, selector: Mapping[str, Any], where: str) -> str:
    """One series per selected pod (``namespace``, ``pod``), value 1; none when the selector
    can select no pod (the matchers are :func:`edgepolicy.promql_selectors.selector_matchers`').

    Raises:
        InputError: a selector requirement is malformed (``where`` names the policy).
    """
    matchers = selector_matchers(selector, namespace, where)
    if matchers is None:  # every kube_pod_labels series names its pod: this matches none
        matchers = [f"namespace={quote(namespace)}", 'pod=""']
    return f"max by (namespace, pod) (kube_pod_labels{{{', '.join(matchers)}}})"


def cpu_cores(namespace: str, pods: str) -> str:
    """CPU cores used by the pods of ``pods`` (a :func:`selected_pods` expression), summed."""
    return (
        "sum(sum by (namespace, pod) (rate(container_cpu_usage_seconds_total"
        f'{{container!="", container!="POD", namespace={quote(namespace)}}}[{STEP}]))'
        f" * on (namespace, pod) {pods})"
    )


def memory_bytes(namespace: str, pods: str) -> str:
    """Working-set memory of the pods of ``pods``, summed (bytes)."""
    return (
        "sum(sum by (namespace, pod) (container_memory_working_set_bytes"
        f'{{container!="", container!="POD", namespace={quote(namespace)}}})'
        f" * on (namespace, pod) {pods})"
    )


def gpus_held(namespace: str, pods: str) -> str:
    """GPUs (``nvidia_com_gpu`` limits) held by the Running pods of ``pods``, summed."""
    ns = quote(namespace)
    return (
        "sum(sum by (namespace, pod) (kube_pod_container_resource_limits"
        f'{{resource="nvidia_com_gpu", namespace={ns}}}) * on (namespace, pod) '
        "max by (namespace, pod) (kube_pod_status_phase"
        f'{{phase="Running", namespace={ns}}} == 1) * on (namespace, pod) {pods})'
    )


def p99_over(expression: str, window: str) -> str:
    """The 99th percentile of ``expression`` over ``window`` (a PromQL duration)."""
    return f"quantile_over_time(0.99, ({expression})[{window}:{STEP}])"


def peak_over(expression: str, window: str) -> str:
    """The largest value of ``expression`` over ``window``."""
    return f"max_over_time(({expression})[{window}:{STEP}])"


def gpu_steps(expression: str, span: str) -> str:
    """The GPUs of ``expression`` (e.g. :func:`gpus_held`) summed at each minute of ``span``
    before the evaluation time: GPU-hours times :data:`GPU_STEPS_PER_HOUR`."""
    return f"sum_over_time(({expression})[{span}:{GPU_STEP}])"


def peak_daily_gpu_steps(expression: str, window: str) -> str:
    """The largest :func:`gpu_steps` of one complete UTC day of ``window`` (1d subquery steps
    fall on UTC midnights)."""
    return f"max_over_time(({gpu_steps(expression, '1d')})[{window}:1d])"


def one_value(prometheus: PrometheusClient, promql: str, at: datetime) -> Decimal | None:
    """The value of the aggregated ``promql`` (one series) at ``at``, exactly; None when the
    answer is empty or not a finite number (NaN: no measurement).

    Raises:
        PrometheusError: the query failed or its value is not a number.
    """
    samples = prometheus.query(promql, at)
    if not samples:
        return None
    value = value_of(samples[0]["value"][1], promql)
    return value if value.is_finite() else None
