"""What the pods a FinOpsPolicy selects really used, from the standard exporters' series in a
Prometheus-compatible API: allocated GPU-hours (GPUs held while Running) per day against
``dailyGPUHours``, CPU and memory use (p50/p95/max) against the limits and the policy's
maxima, GPU utilisation, and periods a pod held GPUs it did not use.

Every number is aggregated by Prometheus (subqueries, ``*_over_time``, range queries with a
step): what comes back is per pod or per policy, never raw samples. GPU-hours are counted
exactly: Prometheus sums the GPUs held at each ``RESOLUTION`` step (integers), and the hours
are that count times the step, in :class:`~decimal.Decimal`, compared with the budget exactly.

Series read (kube-state-metrics 2.x, cAdvisor through the kubelet, NVIDIA's dcgm-exporter):
``kube_pod_labels`` (pod labels as ``label_<name>``: kube-state-metrics must expose them, e.g.
``--metric-labels-allowlist=pods=[*]``), ``kube_pod_container_resource_limits``
(``resource="nvidia_com_gpu"``, ``"cpu"``, ``"memory"``), ``kube_pod_status_phase``,
``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes`` and
``DCGM_FI_DEV_GPU_UTIL``, each with ``namespace`` and ``pod`` labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from edgepolicy.policy_data import policy_key
from edgepolicy.prometheus_api import PrometheusClient, Sample, value_of
from edgepolicy.promql_selectors import quote, selector_matchers

RESOLUTION = 60  # seconds between the evaluations GPU-hours and idle periods are counted at
USE_STEP = 300  # seconds between the CPU and memory use samples quantiles are taken over
DAY = timedelta(days=1)
GIB = Decimal(2**30)


@dataclass(frozen=True)
class PolicyTarget:
    """A FinOpsPolicy as the report reads it: its id, namespace, PromQL matchers on
    ``kube_pod_labels`` (None: it selects nothing) and the limits the report compares with."""

    id: str
    namespace: str
    matchers: tuple[str, ...] | None
    daily_gpu_hours: Decimal | None
    max_cpu_cores: Decimal | None
    max_memory_gib: Decimal | None
    idle_threshold_minutes: int | None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    return Decimal(str(value))


def policy_target(policy: Mapping[str, Any]) -> PolicyTarget:
    """The target of a validated FinOpsPolicy object.

    Raises:
        InputError: the policy has no name, or a malformed selector.
    """
    namespace, name = policy_key(policy)
    spec = policy.get("spec") or {}
    limits = spec.get("costLimits") or {}
    rules = spec.get("optimizationRules") or {}
    policy_id = f"{namespace}/{name}"
    matchers = selector_matchers(spec.get("targetWorkloadSelector"), namespace, policy_id)
    idle = rules.get("idleShutdownThresholdMinutes")
    return PolicyTarget(
        id=policy_id,
        namespace=namespace,
        matchers=tuple(matchers) if matchers is not None else None,
        daily_gpu_hours=_decimal(limits.get("dailyGPUHours")),
        max_cpu_cores=_decimal(limits.get("maxCPUCores")),
        max_memory_gib=_decimal(limits.get("maxMemoryGB")),
        idle_threshold_minutes=idle if isinstance(idle, int) else None,
    )


class PolicyQueries:
    """The PromQL of one policy's measurements (public so that other commands, e.g. the idle
    shutdown loop, ask the same questions)."""

    def __init__(self, target: PolicyTarget) -> None:
        if target.matchers is None:
            raise ValueError("a policy that selects nothing has no queries")
        ns = f"namespace={quote(target.namespace)}"
        self.labels = f"kube_pod_labels{{{', '.join(target.matchers)}}}"
        self.selected = f"max by (namespace, pod) ({self.labels})"
        on = "* on (namespace, pod)"
        self.gpus_held = (
            "(sum by (namespace, pod) (kube_pod_container_resource_limits"
            f'{{{ns}, resource="nvidia_com_gpu"}})'
            f' {on} max by (namespace, pod) (kube_pod_status_phase{{{ns}, phase="Running"}})'
            f" {on} {self.selected})"
        )
        containers = f'{ns}, container!="", container!="POD"'
        self.cpu_cores = (
            "(sum by (namespace, pod) (rate(container_cpu_usage_seconds_total"
            f"{{{containers}}}[5m])) {on} {self.selected})"
        )
        self.memory_bytes = (
            "(sum by (namespace, pod) (container_memory_working_set_bytes"
            f"{{{containers}}}) {on} {self.selected})"
        )
        self.cpu_limit = (
            "(sum by (namespace, pod) (kube_pod_container_resource_limits"
            f'{{{ns}, resource="cpu"}}) {on} {self.selected})'
        )
        self.memory_limit = (
            "(sum by (namespace, pod) (kube_pod_container_resource_limits"
            f'{{{ns}, resource="memory"}}) {on} {self.selected})'
        )
        self.gpu_utilization = f"(DCGM_FI_DEV_GPU_UTIL{{{ns}}} {on} group_left () {self.selected})"
        # A pod holds GPUs while Running and every one of them is at 0% utilisation.
        self.gpu_idle = (
            f"(({self.gpus_held} > 0) and on (namespace, pod)"
            f" (max by (namespace, pod) ({self.gpu_utilization}) == 0))"
        )

    def pods(self, window: str) -> str:
        """The pods selected at some time in the window."""
        return f"max by (namespace, pod) (max_over_time({self.labels}[{window}]))"


def _range(seconds: int) -> str:
    return f"{seconds}s"


@dataclass(frozen=True)
class Stats:
    """p50, p95 and max over the window, and the limit to compare them with."""

    p50: Decimal | None = None
    p95: Decimal | None = None
    max: Decimal | None = None
    limit: Decimal | None = None


@dataclass(frozen=True)
class DayUse:
    """GPU-hours held in ``(start, end]`` and whether they exceed ``dailyGPUHours``."""

    start: datetime
    end: datetime
    gpu_hours: Decimal
    budget_exceeded: bool


@dataclass(frozen=True)
class IdlePeriod:
    """A pod held GPUs at 0% utilisation in ``[start, end)``; ``ongoing`` at the window's end,
    ``from_start`` already at its start."""

    namespace: str
    pod: str
    start: datetime
    end: datetime
    ongoing: bool
    from_start: bool

    @property
    def minutes(self) -> Decimal:
        """The length in minutes."""
        return Decimal(int((self.end - self.start).total_seconds())) / 60


@dataclass(frozen=True)
class PodUse:
    """One selected pod's use over the window."""

    namespace: str
    pod: str
    gpu_hours: Decimal
    cpu_cores: Stats
    memory_gib: Stats
    gpu_utilization: Decimal | None


@dataclass(frozen=True)
class PolicyUse:
    """What a policy's pods used over ``(start, end]``."""

    target: PolicyTarget
    start: datetime
    end: datetime
    pods: tuple[PodUse, ...] = ()
    gpu_hours: Decimal = Decimal(0)
    days: tuple[DayUse, ...] = ()
    cpu_cores: Stats = Stats()
    memory_gib: Stats = Stats()
    gpu_utilization: Decimal | None = None
    idle_periods: tuple[IdlePeriod, ...] = ()
    hourly_gpu_hours: tuple[tuple[datetime, Decimal], ...] = field(default=())
    hourly_cpu_cores: tuple[tuple[datetime, Decimal], ...] = field(default=())

    @property
    def gpu_hours_per_day(self) -> Decimal:
        """GPU-hours per 24 hours of the window, on average."""
        seconds = Decimal(int((self.end - self.start).total_seconds()))
        return self.gpu_hours * 86400 / seconds

    @property
    def budget_exceeded(self) -> bool:
        """True when some day of the window held more GPU-hours than ``dailyGPUHours``."""
        return any(day.budget_exceeded for day in self.days)


def _hours(steps: Decimal) -> Decimal:
    """GPU-hours of ``steps`` GPU x RESOLUTION evaluations (exact when it terminates)."""
    return steps * RESOLUTION / 3600


def _over_budget(steps: Decimal, budget: Decimal | None) -> bool:
    """True when ``steps`` GPU x RESOLUTION evaluations exceed ``budget`` hours (exact)."""
    return budget is not None and steps * RESOLUTION > budget * 3600


class UsageReader:
    """Measures policies' use over a window ending at ``end`` through ``client``."""

    def __init__(
        self, client: PrometheusClient, *, end: datetime, window: timedelta, history: timedelta
    ) -> None:
        self._client = client
        self._end = end
        self._window = window
        self._history = max(history, window)
        self._w = _range(int(window.total_seconds()))

    def measure(self, target: PolicyTarget) -> PolicyUse:
        """The use of ``target``'s pods (nothing when it selects nothing).

        Raises:
            PrometheusError: a query failed.
        """
        start = self._end - self._window
        if target.matchers is None:
            return PolicyUse(target, start, self._end)
        q = PolicyQueries(target)
        days, steps = self._days(q, target.daily_gpu_hours)
        return PolicyUse(
            target,
            start,
            self._end,
            pods=self._pods(q),
            gpu_hours=_hours(steps),
            days=days,
            cpu_cores=self._stats(f"sum({q.cpu_cores})", f"sum({q.cpu_limit})"),
            memory_gib=self._stats(f"sum({q.memory_bytes})", f"sum({q.memory_limit})", scale=GIB),
            gpu_utilization=self._scalar(
                f"avg_over_time(avg({q.gpu_utilization})[{self._w}:{RESOLUTION}s])"
            ),
            idle_periods=self._idle(q, target.idle_threshold_minutes),
            hourly_gpu_hours=self._hourly(
                f"sum(sum_over_time({q.gpus_held}[1h:{RESOLUTION}s]))", _hours
            ),
            hourly_cpu_cores=self._hourly(
                f"avg_over_time(sum({q.cpu_cores})[1h:{USE_STEP}s])", lambda v: v
            ),
        )

    def _instant(self, promql: str, at: datetime | None = None) -> list[Sample]:
        return self._client.query(promql, at or self._end)

    def _scalar(self, promql: str, at: datetime | None = None) -> Decimal | None:
        samples = self._instant(promql, at)
        if not samples:
            return None
        value = value_of(samples[0]["value"][1], promql)
        return None if value.is_nan() else value

    def _days(self, q: PolicyQueries, budget: Decimal | None) -> tuple[tuple[DayUse, ...], Decimal]:
        """The window cut in days ending at its end (the oldest may be shorter), each with its
        GPU-hours; and the GPU x RESOLUTION evaluations of the whole window."""
        held = f"sum(sum_over_time({q.gpus_held}[1d:{RESOLUTION}s]))"
        full = int(self._window / DAY)
        counts: dict[datetime, Decimal] = {}
        if full:
            first = self._end - (full - 1) * DAY
            for series in self._client.query_range(held, first, self._end, 86400):
                for stamp, raw in series["values"]:
                    counts[datetime.fromtimestamp(stamp, UTC)] = value_of(raw, held)
        segments = [(self._end - (i + 1) * DAY, self._end - i * DAY) for i in range(full)]
        rest = self._window - full * DAY
        if rest:
            edge = self._end - full * DAY
            span = _range(int(rest.total_seconds()))
            partial = f"sum(sum_over_time({q.gpus_held}[{span}:{RESOLUTION}s]))"
            counts[edge] = self._scalar(partial, edge) or Decimal(0)
            segments.append((edge - rest, edge))
        days = []
        total = Decimal(0)
        for begin, finish in reversed(segments):
            steps = counts.get(finish, Decimal(0))
            total += steps
            days.append(DayUse(begin, finish, _hours(steps), _over_budget(steps, budget)))
        return tuple(days), total

    def _stats(self, use: str, limit: str, *, scale: Decimal = Decimal(1)) -> Stats:
        window = f"[{self._w}:{USE_STEP}s]"

        def scaled(value: Decimal | None) -> Decimal | None:
            return None if value is None else value / scale

        return Stats(
            p50=scaled(self._scalar(f"quantile_over_time(0.5, {use}{window})")),
            p95=scaled(self._scalar(f"quantile_over_time(0.95, {use}{window})")),
            max=scaled(self._scalar(f"max_over_time({use}{window})")),
            limit=scaled(self._scalar(f"max_over_time({limit}{window})")),
        )

    def _by_pod(self, promql: str) -> dict[tuple[str, str], Decimal]:
        found = {}
        for sample in self._instant(promql):
            value = value_of(sample["value"][1], promql)
            if not value.is_nan():
                key = (sample["metric"].get("namespace", ""), sample["metric"].get("pod", ""))
                found[key] = value
        return found

    def _pods(self, q: PolicyQueries) -> tuple[PodUse, ...]:
        w = self._w
        use = f"[{w}:{USE_STEP}s]"
        pods = sorted(self._by_pod(q.pods(w)))
        held = self._by_pod(f"sum_over_time({q.gpus_held}[{w}:{RESOLUTION}s])")
        cpu = {
            name: self._by_pod(f"{func}{q.cpu_cores}{use})") for name, func in _QUANTILES.items()
        }
        cpu["limit"] = self._by_pod(f"max_over_time({q.cpu_limit}{use})")
        memory = {
            name: self._by_pod(f"{func}{q.memory_bytes}{use})") for name, func in _QUANTILES.items()
        }
        memory["limit"] = self._by_pod(f"max_over_time({q.memory_limit}{use})")
        utilization = self._by_pod(
            f"avg_over_time(avg by (namespace, pod) ({q.gpu_utilization})[{w}:{RESOLUTION}s])"
        )

        def stats(
            values: Mapping[str, Mapping[tuple[str, str], Decimal]],
            key: tuple[str, str],
            scale: Decimal = Decimal(1),
        ) -> Stats:
            got = {name: (v[key] / scale if key in v else None) for name, v in values.items()}
            return Stats(got["p50"], got["p95"], got["max"], got["limit"])

        return tuple(
            PodUse(
                namespace,
                pod,
                _hours(held.get((namespace, pod), Decimal(0))),
                stats(cpu, (namespace, pod)),
                stats(memory, (namespace, pod), GIB),
                utilization.get((namespace, pod)),
            )
            for namespace, pod in pods
        )

    def _idle(self, q: PolicyQueries, threshold: int | None) -> tuple[IdlePeriod, ...]:
        """Periods longer than ``threshold`` minutes in which a pod held GPUs at 0%: found from
        the evaluations where the idle state changes (Prometheus returns only those)."""
        if threshold is None:
            return ()
        step = f"{RESOLUTION}s"
        before = f"last_over_time({q.gpu_idle}[{step}:{step}] offset {step})"
        began = f"{q.gpu_idle} unless on (namespace, pod) {before}"
        ended = f"{before} unless on (namespace, pod) {q.gpu_idle}"
        first = self._end - self._window
        open_at: dict[tuple[str, str], tuple[datetime, bool]] = {
            key: (first, True) for key in self._by_pod_at(q.gpu_idle, first)
        }
        changes: list[tuple[datetime, int, tuple[str, str]]] = []
        for kind, promql in ((1, began), (0, ended)):
            for series in self._client.query_range(
                promql, first + timedelta(seconds=RESOLUTION), self._end, RESOLUTION
            ):
                key = (series["metric"].get("namespace", ""), series["metric"].get("pod", ""))
                changes.extend(
                    (datetime.fromtimestamp(stamp, UTC), kind, key) for stamp, _ in series["values"]
                )
        periods: list[IdlePeriod] = []
        limit = timedelta(minutes=threshold)
        for at, kind, key in sorted(changes):
            if kind == 1:
                open_at.setdefault(key, (at, False))
            elif key in open_at:
                begun, from_start = open_at.pop(key)
                if at - begun > limit:
                    periods.append(IdlePeriod(*key, begun, at, False, from_start))
        for key, (begun, from_start) in open_at.items():
            if self._end - begun > limit:
                periods.append(IdlePeriod(*key, begun, self._end, True, from_start))
        return tuple(sorted(periods, key=lambda p: (p.start, p.namespace, p.pod)))

    def _by_pod_at(self, promql: str, at: datetime) -> list[tuple[str, str]]:
        return [
            (s["metric"].get("namespace", ""), s["metric"].get("pod", ""))
            for s in self._instant(promql, at)
        ]

    def _hourly(self, promql: str, convert: Any) -> tuple[tuple[datetime, Decimal], ...]:
        """``promql`` (one series) every hour over the history, oldest first; hours inside the
        series without a value are 0."""
        end = self._end
        start = end - self._history + timedelta(hours=1)
        found: dict[datetime, Decimal] = {}
        for series in self._client.query_range(promql, start, end, 3600):
            for stamp, raw in series["values"]:
                value = value_of(raw, promql)
                if not value.is_nan():
                    found[datetime.fromtimestamp(stamp, UTC)] = convert(value)
        if not found:
            return ()
        hours = []
        at = min(found)
        while at <= end:
            hours.append((at, found.get(at, Decimal(0))))
            at += timedelta(hours=1)
        return tuple(hours)


_QUANTILES = {
    "p50": "quantile_over_time(0.5, ",
    "p95": "quantile_over_time(0.95, ",
    "max": "max_over_time(",
}
