"""Right-size a FinOpsPolicy's limits from what its pods really used.

For each limit the policy sets, Prometheus answers one aggregated query over the window
(:mod:`edgepolicy.finops_queries`): the 99th percentile of the selected pods' summed CPU use
(``maxCPUCores``), the peak of their summed working-set memory (``maxMemoryGB``, GiB) and the
largest daily GPU-hours held while Running, counted each minute (``dailyGPUHours``). The
suggestion is that use plus the headroom, rounded **up** to the field's step (CPU 0.1 core,
memory 0.25 GiB, GPU-hours 0.5 hour; never below one step). Only decreases are suggested: a
workload held at its limit shows the limit, not its need, so telemetry cannot justify a raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from edgepolicy import finops_queries
from edgepolicy.policy_yaml_edits import NumberField, PolicyDocument, decimal_text
from edgepolicy.prometheus_api import PrometheusClient

GIB = Decimal(2**30)


@dataclass(frozen=True)
class Measure:
    """How one limit is measured and rounded: its spec path, the query over the window, the
    unit conversion, the rounding step, and how the evidence names the statistic and unit."""

    path: tuple[str, str]
    query: Callable[[str, str, str], str]  # (namespace, pods expression, window) -> PromQL
    divisor: Decimal
    step: Decimal
    statistic: str
    unit: str


MEASURES = (
    Measure(
        ("costLimits", "maxCPUCores"),
        lambda ns, pods, window: finops_queries.p99_over(
            finops_queries.cpu_cores(ns, pods), window
        ),
        Decimal(1),
        Decimal("0.1"),
        "p99 use",
        "cores",
    ),
    Measure(
        ("costLimits", "maxMemoryGB"),
        lambda ns, pods, window: finops_queries.peak_over(
            finops_queries.memory_bytes(ns, pods), window
        ),
        GIB,
        Decimal("0.25"),
        "peak use",
        "GiB",
    ),
    Measure(
        ("costLimits", "dailyGPUHours"),
        lambda ns, pods, window: finops_queries.peak_daily_gpu_steps(
            finops_queries.gpus_held(ns, pods), window
        ),
        Decimal(finops_queries.GPU_STEPS_PER_HOUR),
        Decimal("0.5"),
        "peak daily use",
        "GPU-hours",
    ),
)


@dataclass(frozen=True)
class Change:
    """One suggested change of a policy's number, with its evidence."""

    field: NumberField
    name: str
    suggested: Decimal
    evidence: str


def suggested_value(observed: Decimal, headroom: Decimal, step: Decimal) -> Decimal:
    """``observed`` plus ``headroom`` (0.25 for 25%), rounded up to a multiple of ``step``, at
    least one step."""
    raw = observed * (1 + headroom)
    steps = (raw / step).to_integral_value(rounding=ROUND_CEILING)
    return max(steps, Decimal(1)) * step


def policy_changes(
    policy: PolicyDocument,
    prometheus: PrometheusClient,
    *,
    window: str,
    window_text: str,
    headroom: Decimal,
    at: datetime,
    where: str,
) -> list[Change]:
    """The decreases suggested for ``policy``'s limits from use over ``window`` (a PromQL
    duration, ``window_text`` its words in the evidence, e.g. "14 days") at ``at``. A limit
    without data (no selected pod in the window) is left alone.

    Raises:
        InputError: the policy's selector cannot be translated (``where`` names it).
        PrometheusError: a query failed.
    """
    pods = finops_queries.selected_pods(policy.namespace, policy.selector, where)
    changes = []
    for measure in MEASURES:
        field = policy.numbers.get(measure.path)
        if field is None:
            continue
        value = finops_queries.one_value(
            prometheus, measure.query(policy.namespace, pods, window), at
        )
        if value is None:
            continue
        observed = value / measure.divisor
        suggested = suggested_value(observed, headroom, measure.step)
        if suggested >= field.value:
            continue
        name = measure.path[-1]
        shown = observed.quantize(Decimal("0.01")).normalize()
        evidence = (
            f"{name} {decimal_text(field.value)} -> {decimal_text(suggested)}: "
            f"{measure.statistic} {decimal_text(shown)} {measure.unit} over {window_text}, "
            f"plus {decimal_text(headroom * 100)}% headroom"
        )
        changes.append(Change(field, name, suggested, evidence))
    return changes


def commit_message(policy: PolicyDocument, path: str, changes: list[Change]) -> str:
    """The commit message of one policy's changes: a subject naming the policy, then one line
    of evidence per change."""
    subject = f"FinOpsPolicy {policy.namespace}/{policy.name}: right-size from observed use"
    lines = [subject, "", *(change.evidence for change in changes), ""]
    lines.append(f"File: {path}. Suggested by `edgepolicy finops suggest`.")
    return "\n".join(lines) + "\n"
