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

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from edgepolicy.errors import InputError
from edgepolicy.prometheus_api import PrometheusClient, value_of

# The subquery resolution of the CPU and memory aggregations (the rate of CPU use spans 5m too).
STEP = "5m"
# GPU-hours are counted as GPUs held at each minute (integers, summed by Prometheus), as `finops
# report` counts them; hours are the count divided by GPU_STEPS_PER_HOUR, in exact decimals.
GPU_STEP = "60s"
GPU_STEPS_PER_HOUR = 60
_LABEL_CHARACTER = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str) -> str:
    """kube-state-metrics' label name of the pod label ``key`` (``app.kubernetes.io/name`` is
    ``label_app_kubernetes_io_name``)."""
    return "label_" + _LABEL_CHARACTER.sub("_", key)


def quoted(value: str) -> str:
    """``value`` as a PromQL double-quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def pod_matchers(namespace: str, selector: Mapping[str, Any], where: str) -> str:
    """The label matchers of ``kube_pod_labels`` selecting the pods ``selector`` (a
    ``targetWorkloadSelector``) selects in ``namespace``.

    Raises:
        InputError: the selector has an operator other than In, NotIn, Exists and
            DoesNotExist (``where`` names the policy).
    """
    matchers = [f"namespace={quoted(namespace)}"]
    labels = selector.get("matchLabels") or {}
    for key, value in sorted(labels.items()):
        matchers.append(f"{label_name(str(key))}={quoted(str(value))}")
    for expression in selector.get("matchExpressions") or []:
        name = label_name(str(expression.get("key")))
        operator = expression.get("operator")
        values = "|".join(re.escape(str(value)) for value in expression.get("values") or [])
        if operator == "In":
            matchers.append(f"{name}=~{quoted(values)}")
        elif operator == "NotIn":
            matchers.append(f"{name}!~{quoted(values)}")
        elif operator == "Exists":
            matchers.append(f'{name}!=""')
        elif operator == "DoesNotExist":
            matchers.append(f'{name}=""')
        else:
            raise InputError(
                f"{where}: targetWorkloadSelector has the unknown operator {operator!r}"
            )
    return ", ".join(matchers)


def selected_pods(namespace: str, selector: Mapping[str, Any], where: str) -> str:
    """One series per selected pod (``namespace``, ``pod``), value 1.

    Raises:
        InputError: as :func:`pod_matchers`.
    """
    return (
        f"max by (namespace, pod) (kube_pod_labels{{{pod_matchers(namespace, selector, where)}}})"
    )


def cpu_cores(namespace: str, pods: str) -> str:
    """CPU cores used by the pods of ``pods`` (a :func:`selected_pods` expression), summed."""
    return (
        "sum(sum by (namespace, pod) (rate(container_cpu_usage_seconds_total"
        f'{{container!="", namespace={quoted(namespace)}}}[{STEP}])) * on (namespace, pod) {pods})'
    )


def memory_bytes(namespace: str, pods: str) -> str:
    """Working-set memory of the pods of ``pods``, summed (bytes)."""
    return (
        "sum(sum by (namespace, pod) (container_memory_working_set_bytes"
        f'{{container!="", namespace={quoted(namespace)}}}) * on (namespace, pod) {pods})'
    )


def gpus_held(namespace: str, pods: str) -> str:
    """GPUs (``nvidia_com_gpu`` limits) held by the Running pods of ``pods``, summed."""
    ns = quoted(namespace)
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
