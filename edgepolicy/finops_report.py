"""The `finops report` document: each policy's measured use (:mod:`edgepolicy.finops_usage`)
and forecast (:mod:`edgepolicy.finops_forecast`) as one JSON-ready dict, and its text form.

Numbers are written as JSON numbers: integral values as integers, others rounded (GPU-hours
and cores to 4 places, GiB to 3); the verdicts (``budgetExceeded``) were decided exactly before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from edgepolicy.finops_forecast import ForecastUnavailable, SeriesForecast, forecast_series
from edgepolicy.finops_usage import PolicyUse, Stats


def number(value: Decimal | None, places: str = "0.0001") -> int | float | None:
    """``value`` as a JSON number (None stays None)."""
    if value is None:
        return None
    rounded = value.quantize(Decimal(places))
    if rounded == rounded.to_integral_value():
        return int(rounded)
    return float(rounded)


def stamp(at: datetime) -> str:
    """RFC 3339 in UTC, to the second."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _stats(
    stats: Stats, places: str, maximum: Decimal | None = None, *, with_max: bool = False
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "p50": number(stats.p50, places),
        "p95": number(stats.p95, places),
        "max": number(stats.max, places),
        "limit": number(stats.limit, places),
    }
    if with_max:
        found["policyMax"] = number(maximum, places)
        found["exceedsPolicyMax"] = (
            maximum is not None and stats.max is not None and stats.max > maximum
        )
    return found


def _forecast(
    name: str, forecast: SeriesForecast, budget: Decimal | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    document: dict[str, Any] = {
        "seasonality": list(forecast.seasonality),
        "days": [
            {
                "end": stamp(b.at),
                "mean": number(b.mean),
                "lower": number(b.lower),
                "upper": number(b.upper),
            }
            for b in forecast.daily
        ],
        "hours": [
            [stamp(b.at), number(b.mean), number(b.lower), number(b.upper)] for b in forecast.hourly
        ],
    }
    if budget is not None:
        crossing = forecast.first_day_above(budget)
        document["budgetExceededOn"] = stamp(crossing.at) if crossing else None
    anomalies = [
        {
            "series": name,
            "hourEnding": stamp(a.at),
            "observed": number(a.observed),
            "expected": number(a.expected),
            "lower": number(a.lower),
            "upper": number(a.upper),
        }
        for a in forecast.anomalies
    ]
    return document, anomalies


def policy_document(use: PolicyUse, *, forecast: bool = True) -> dict[str, Any]:
    """One policy's entry of the report."""
    target = use.target
    document: dict[str, Any] = {
        "policy": target.id,
        "selectsPods": target.matchers is not None,
        "gpuHours": number(use.gpu_hours),
        "gpuHoursPerDay": number(use.gpu_hours_per_day),
        "dailyGPUHours": number(target.daily_gpu_hours),
        "budgetExceeded": use.budget_exceeded,
        "days": [
            {
                "start": stamp(day.start),
                "end": stamp(day.end),
                "gpuHours": number(day.gpu_hours),
                "budgetExceeded": day.budget_exceeded,
            }
            for day in use.days
        ],
        "cpuCores": _stats(use.cpu_cores, "0.0001", target.max_cpu_cores, with_max=True),
        "memoryGiB": _stats(use.memory_gib, "0.001", target.max_memory_gib, with_max=True),
        "gpuUtilizationPercent": number(use.gpu_utilization, "0.01"),
        "idleShutdownThresholdMinutes": target.idle_threshold_minutes,
        "idlePeriods": [
            {
                "namespace": p.namespace,
                "pod": p.pod,
                "start": stamp(p.start),
                "end": stamp(p.end),
                "minutes": number(p.minutes, "0.01"),
                "ongoing": p.ongoing,
            }
            for p in use.idle_periods
        ],
        "pods": [
            {
                "namespace": pod.namespace,
                "pod": pod.pod,
                "gpuHours": number(pod.gpu_hours),
                "cpuCores": _stats(pod.cpu_cores, "0.0001"),
                "memoryGiB": _stats(pod.memory_gib, "0.001"),
                "gpuUtilizationPercent": number(pod.gpu_utilization, "0.01"),
            }
            for pod in use.pods
        ],
        "hourly": {
            "gpuHours": [[stamp(at), number(v)] for at, v in use.hourly_gpu_hours],
            "cpuCores": [[stamp(at), number(v)] for at, v in use.hourly_cpu_cores],
        },
    }
    anomalies: list[dict[str, Any]] = []
    forecasts: dict[str, Any] = {}
    if forecast:
        series = (
            ("gpuHours", use.hourly_gpu_hours, True, target.daily_gpu_hours),
            ("cpuCores", use.hourly_cpu_cores, False, None),
        )
        for name, hourly, total, budget in series:
            try:
                result = forecast_series(hourly, total=total, anomalies_after=use.start)
            except ForecastUnavailable as error:
                forecasts[name] = {"unavailable": str(error)}
                continue
            forecasts[name], found = _forecast(name, result, budget)
            anomalies.extend(found)
    document["forecast"] = forecasts
    document["anomalies"] = sorted(anomalies, key=lambda a: (a["hourEnding"], a["series"]))
    return document


def report_document(
    uses: Sequence[PolicyUse],
    invalid: Sequence[Mapping[str, Any]],
    *,
    prometheus: str,
    window: str,
    start: datetime,
    end: datetime,
    forecast: bool = True,
) -> dict[str, Any]:
    """The whole report: ``{"policies": [...], "invalidPolicies": [...], ...}``."""
    return {
        "prometheus": prometheus,
        "window": window,
        "start": stamp(start),
        "end": stamp(end),
        "policies": [policy_document(use, forecast=forecast) for use in uses],
        "invalidPolicies": list(invalid),
    }


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def render_text(document: Mapping[str, Any]) -> str:
    """The report for a terminal."""
    lines = [f"FinOps report {document['start']} .. {document['end']} ({document['window']})"]
    for policy in document["policies"]:
        verdict = "OVER BUDGET" if policy["budgetExceeded"] else "within budget"
        lines.append("")
        lines.append(f"{policy['policy']}: {len(policy['pods'])} pod(s), {verdict}")
        lines.append(
            f"  GPU-hours {policy['gpuHours']} ({policy['gpuHoursPerDay']}/day, "
            f"budget {_cell(policy['dailyGPUHours'])}/day)"
        )
        for day in policy["days"]:
            mark = "  OVER" if day["budgetExceeded"] else ""
            lines.append(f"    {day['start']} .. {day['end']}: {day['gpuHours']}{mark}")
        for key, unit in (("cpuCores", "cores"), ("memoryGiB", "GiB")):
            s = policy[key]
            over = "  ABOVE POLICY MAX" if s["exceedsPolicyMax"] else ""
            lines.append(
                f"  {key}: p50 {_cell(s['p50'])} p95 {_cell(s['p95'])} max {_cell(s['max'])} "
                f"{unit}; limits {_cell(s['limit'])}, policy max {_cell(s['policyMax'])}{over}"
            )
        lines.append(f"  GPU utilisation: {_cell(policy['gpuUtilizationPercent'])}%")
        threshold = policy["idleShutdownThresholdMinutes"]
        if threshold is not None:
            lines.append(f"  idle > {threshold} min: {len(policy['idlePeriods'])} period(s)")
            for p in policy["idlePeriods"]:
                ongoing = " (ongoing)" if p["ongoing"] else ""
                lines.append(
                    f"    {p['namespace']}/{p['pod']}: {p['start']} .. {p['end']} "
                    f"({p['minutes']} min){ongoing}"
                )
        for name, forecast in policy["forecast"].items():
            if "unavailable" in forecast:
                lines.append(f"  forecast {name}: unavailable: {forecast['unavailable']}")
                continue
            days = ", ".join(str(d["mean"]) for d in forecast["days"])
            lines.append(f"  forecast {name} next days: {days or '-'}")
            if "budgetExceededOn" in forecast:
                crossing = forecast["budgetExceededOn"] or "not within 7 days"
                lines.append(f"  budget exceeded on: {crossing}")
        for a in policy["anomalies"]:
            lines.append(
                f"  anomaly {a['series']} hour ending {a['hourEnding']}: {a['observed']} "
                f"outside [{a['lower']}, {a['upper']}]"
            )
    for invalid in document["invalidPolicies"]:
        lines.append("")
        lines.append(f"{invalid['policy']}: not measured (invalid): {'; '.join(invalid['errors'])}")
    return "\n".join(lines) + "\n"
