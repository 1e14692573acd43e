"""Prometheus metrics of ``edgepolicy audit --interval``, on a registry of their own.

- ``edgepolicy_audit_violations{policy,rule,severity,recipient_group,enforcement_action}``: the
  findings of the last completed run (a gauge: a finding that is fixed disappears with the next
  run, so an alert on it resolves);
- ``edgepolicy_audit_last_run_timestamp_seconds``: when the last completed run started (Unix
  time), to alert on an audit that stopped running;
- ``edgepolicy_audit_run_duration_seconds``: how long runs take (a histogram);
- ``edgepolicy_audit_objects``: how many stored objects the last run decided;
- ``edgepolicy_audit_errors_total{stage}``: runs that failed (``run``) and writes of statuses
  or Events that failed (``record``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as CounterMetric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

VIOLATION_LABELS = ("policy", "rule", "severity", "recipient_group", "enforcement_action")


class _LastRun(Collector):
    """The gauges of the last completed run, replaced as a whole (never half of two runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str, str, str]] = Counter()
        self._timestamp: float | None = None
        self._objects = 0

    def update(
        self, counts: Counter[tuple[str, str, str, str, str]], *, timestamp: float, objects: int
    ) -> None:
        with self._lock:
            self._counts = Counter(counts)
            self._timestamp = timestamp
            self._objects = objects

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            counts, timestamp, objects = self._counts, self._timestamp, self._objects
        violations = GaugeMetricFamily(
            "edgepolicy_audit_violations",
            "Findings of the last audit run, by policy, rule, the policy's alert severity and "
            "recipient group, and enforcement action.",
            labels=VIOLATION_LABELS,
        )
        for labels, count in sorted(counts.items()):
            violations.add_metric(list(labels), count)
        yield violations
        if timestamp is not None:
            yield GaugeMetricFamily(
                "edgepolicy_audit_last_run_timestamp_seconds",
                "Start of the last completed audit run (Unix time).",
                value=timestamp,
            )
            yield GaugeMetricFamily(
                "edgepolicy_audit_objects",
                "Stored workloads and HPAs decided by the last audit run.",
                value=objects,
            )


class AuditMetrics:
    """The audit's metrics on their own :class:`CollectorRegistry` (``registry``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._last_run = _LastRun()
        self.registry.register(self._last_run)
        self.duration = Histogram(
            "edgepolicy_audit_run_duration_seconds",
            "Time of an audit run: listing, deciding and recording.",
            buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.errors = CounterMetric(
            "edgepolicy_audit_errors",
            "Audit runs that failed (stage=run) and status or Event writes that failed "
            "(stage=record).",
            ["stage"],
            registry=self.registry,
        )

    def completed(
        self,
        counts: Counter[tuple[str, str, str, str, str]],
        *,
        started: float,
        seconds: float,
        objects: int,
    ) -> None:
        """Publish a completed run that started at ``started`` (Unix time)."""
        self._last_run.update(counts, timestamp=started, objects=objects)
        self.duration.observe(seconds)
