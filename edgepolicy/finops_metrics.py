"""Prometheus metrics of ``edgepolicy finops idle --interval``, on a registry of their own, for
the alerts of deploy/monitoring's ``edgepolicy-finops`` group:

- ``edgepolicy_finops_idle_shutdown{policy,namespace,workload_kind,workload,severity,
  recipient_group,enforcement_action}``: 1 for each workload shut down (or held at zero since),
  or that would be (``warn``, ``dryrun``), in the last run; ``severity`` and
  ``recipient_group`` are the policy's ``spec.alerting.idleShutdown``;
- ``edgepolicy_finops_gpu_hours_last_24h{policy,severity,recipient_group}``: GPU-hours held by
  the Running pods a policy selects over the last 24 hours (GPUs held summed at each minute in
  PromQL, divided by 60 exactly);
- ``edgepolicy_finops_daily_gpu_hours{policy,severity,recipient_group}``: the policy's
  ``dailyGPUHours``, with the same labels, so ``used > budget`` matches one to one;
  ``severity`` and ``recipient_group`` are ``spec.alerting.thresholdExceeded``;
- ``edgepolicy_finops_last_run_timestamp_seconds`` and
  ``edgepolicy_finops_errors_total{stage}``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as CounterMetric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edgepolicy import audit_records, finops_queries
from edgepolicy.idle_shutdown import IdleOutcome
from edgepolicy.policy_data import policy_key
from edgepolicy.prometheus_api import PrometheusClient

IDLE_LABELS = (
    "policy",
    "namespace",
    "workload_kind",
    "workload",
    "severity",
    "recipient_group",
    "enforcement_action",
)
BUDGET_LABELS = ("policy", "severity", "recipient_group")


@dataclass(frozen=True)
class BudgetUse:
    """A policy's GPU-hours over the last 24 hours against its ``dailyGPUHours``."""

    policy: str
    severity: str
    recipient_group: str
    used: Decimal
    budget: Decimal


def budget_uses(
    prometheus: PrometheusClient, policies: Iterable[Mapping[str, Any]], *, at: datetime
) -> list[BudgetUse]:
    """The GPU-hours of the last 24 hours of each policy with ``dailyGPUHours`` (one
    aggregated query per policy; a policy whose pods have no series counts 0).

    Raises:
        PrometheusError: a query failed.
        InputError: a policy's selector has an unknown operator.
    """
    uses = []
    for policy in policies:
        spec = policy.get("spec") or {}
        budget = (spec.get("costLimits") or {}).get("dailyGPUHours")
        selector = spec.get("targetWorkloadSelector")
        if not isinstance(budget, int | float) or isinstance(budget, bool):
            continue
        if not isinstance(selector, Mapping):
            continue
        namespace, name = policy_key(policy)
        where = f"FinOpsPolicy {namespace}/{name}"
        pods = finops_queries.selected_pods(namespace, selector, where)
        held = finops_queries.gpus_held(namespace, pods)
        steps = finops_queries.one_value(prometheus, finops_queries.gpu_steps(held, "24h"), at)
        route = audit_records.alert_route(policy)
        uses.append(
            BudgetUse(
                f"{namespace}/{name}",
                route.severity,
                route.recipient_group,
                Decimal(0) if steps is None else steps / finops_queries.GPU_STEPS_PER_HOUR,
                Decimal(str(budget)),
            )
        )
    return uses


class _LastRun(Collector):
    """The gauges of the last completed run, replaced as a whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcomes: list[IdleOutcome] = []
        self._budgets: list[BudgetUse] = []
        self._timestamp: float | None = None

    def update(
        self, outcomes: list[IdleOutcome], budgets: list[BudgetUse], timestamp: float
    ) -> None:
        with self._lock:
            self._outcomes, self._budgets, self._timestamp = outcomes, budgets, timestamp

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            outcomes, budgets, timestamp = self._outcomes, self._budgets, self._timestamp
        idle = GaugeMetricFamily(
            "edgepolicy_finops_idle_shutdown",
            "Workloads scaled to zero (or held there, or that would be with warn and dryrun) "
            "for idling past their FinOpsPolicy's threshold, with the policy's idleShutdown "
            "routing labels.",
            labels=IDLE_LABELS,
        )
        for outcome in outcomes:
            if outcome.alerting:
                idle.add_metric(
                    [
                        outcome.policy,
                        outcome.namespace,
                        outcome.kind,
                        outcome.name,
                        outcome.severity,
                        outcome.recipient_group,
                        outcome.action,
                    ],
                    1,
                )
        yield idle
        used = GaugeMetricFamily(
            "edgepolicy_finops_gpu_hours_last_24h",
            "GPU-hours held by the Running pods a FinOpsPolicy selects over the last 24 hours.",
            labels=BUDGET_LABELS,
        )
        budget = GaugeMetricFamily(
            "edgepolicy_finops_daily_gpu_hours",
            "The FinOpsPolicy's spec.costLimits.dailyGPUHours.",
            labels=BUDGET_LABELS,
        )
        for use in budgets:
            labels = [use.policy, use.severity, use.recipient_group]
            used.add_metric(labels, float(use.used))
            budget.add_metric(labels, float(use.budget))
        yield used
        yield budget
        if timestamp is not None:
            yield GaugeMetricFamily(
                "edgepolicy_finops_last_run_timestamp_seconds",
                "Start of the last completed idle-shutdown run (Unix time).",
                value=timestamp,
            )


class FinopsMetrics:
    """The idle loop's metrics on their own :class:`CollectorRegistry` (``registry``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._last_run = _LastRun()
        self.registry.register(self._last_run)
        self.errors = CounterMetric(
            "edgepolicy_finops_errors",
            "Idle-shutdown runs that failed (stage=run).",
            ["stage"],
            registry=self.registry,
        )

    def completed(
        self, outcomes: list[IdleOutcome], budgets: list[BudgetUse], *, started: float
    ) -> None:
        """Publish a completed run that started at ``started`` (Unix time)."""
        self._last_run.update(list(outcomes), list(budgets), started)
