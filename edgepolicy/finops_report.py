"""The `finops report` document: each policy's measured use (:mod:`edgepolicy.finops_usage`)
and forecast (:mod:`edgepolicy.finops_forecast`) as one JSON-ready dict, and its text form.

Numbers are written as JSON numbers: integral values as integers, others as the nearest float
(GPU-hours, exact decimals, unrounded: 172 over 7 days is 24.571428571428573 per day; values
measured by Prometheus rounded to 9 places, which drops float noise such as
1.4999999999999998); the verdicts (``budgetExceeded``) were decided exactly before. The text
form shows them to 4 places (:func:`shown`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from edgepolicy.finops_forecast import ForecastUnavailable, SeriesForecast, forecast_series
from edgepolicy.finops_usage import PolicyUse, Stats

_MEASURED = Decimal("1E-9")  # what Prometheus measured (floats) is rounded to 9 places


def number(value: Decimal | None, *, exact: bool = False) -> int | float | None:
    """``value`` as a JSON number (None stays None): an integer when integral, else the nearest
    float, of ``value`` itself when ``exact`` (GPU-hours counted exactly), else of ``value``
    rounded to 9 places (a Prometheus float with its noise)."""
    if value is None:
        return None
    rounded = value if exact else value.quantize(_MEASURED)
    if rounded == rounded.to_integral_value():
        return int(rounded)
    return float(rounded)


def shown(value: Any) -> str:
    """A document value for people: a float to 4 places at most, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def stamp(at: datetime) -> str:
    """RFC 3339 in UTC, to the second."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _stats(
    stats: Stats, maximum: Decimal | None = None, *, with_max: bool = False
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "p50": number(stats.p50),
        "p95": number(stats.p95),
        "max": number(stats.max),
        "limit": number(stats.limit),
    }
    if with_max:
        found["policyMax"] = number(maximum, exact=True)
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
        "gpuHours": number(use.gpu_hours, exact=True),
        "gpuHoursPerDay": number(use.gpu_hours_per_day, exact=True),
        "dailyGPUHours": number(target.daily_gpu_hours, exact=True),
        "budgetExceeded": use.budget_exceeded,
        "days": [
            {
                "start": stamp(day.start),
                "end": stamp(day.end),
                "gpuHours": number(day.gpu_hours, exact=True),
                "budgetExceeded": day.budget_exceeded,
            }
            for day in use.days
        ],
        "cpuCores": _stats(use.cpu_cores, target.max_cpu_cores, with_max=True),
        "memoryGiB": _stats(use.memory_gib, target.max_memory_gib, with_max=True),
        "gpuUtilizationPercent": number(use.gpu_utilization),
        "idleShutdownThresholdMinutes": target.idle_threshold_minutes,
        "idlePeriods": [
            {
                "namespace": p.namespace,
                "pod": p.pod,
                "start": stamp(p.start),
                "end": stamp(p.end),
                "minutes": number(p.minutes, exact=True),
                "ongoing": p.ongoing,
            }
            for p in use.idle_periods
        ],
        "pods": [
            {
                "namespace": pod.namespace,
                "pod": pod.pod,
                "gpuHours": number(pod.gpu_hours, exact=True),
                "cpuCores": _stats(pod.cpu_cores),
                "memoryGiB": _stats(pod.memory_gib),
                "gpuUtilizationPercent": number(pod.gpu_utilization),
            }
            for pod in use.pods
        ],
        "hourly": {
            "gpuHours": [[stamp(at), number(v, exact=True)] for at, v in use.hourly_gpu_hours],
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


def render_text(document: Mapping[str, Any]) -> str:
    """The report for a terminal."""
    lines = [f"FinOps report {document['start']} .. {document['end']} ({document['window']})"]
    for policy in document["policies"]:
        verdict = "OVER BUDGET" if policy["budgetExceeded"] else "within budget"
        lines.append("")
        lines.append(f"{policy['policy']}: {len(policy['pods'])} pod(s), {verdict}")
        lines.append(
            f"  GPU-hours {shown(policy['gpuHours'])} ({shown(policy['gpuHoursPerDay'])}/day, "
            f"budget {shown(policy['dailyGPUHours'])}/day)"
        )
        for day in policy["days"]:
            mark = "  OVER" if day["budgetExceeded"] else ""
            lines.append(f"    {day['start']} .. {day['end']}: {shown(day['gpuHours'])}{mark}")
        for key, unit in (("cpuCores", "cores"), ("memoryGiB", "GiB")):
            s = policy[key]
            over = "  ABOVE POLICY MAX" if s["exceedsPolicyMax"] else ""
            lines.append(
                f"  {key}: p50 {shown(s['p50'])} p95 {shown(s['p95'])} max {shown(s['max'])} "
                f"{unit}; limits {shown(s['limit'])}, policy max {shown(s['policyMax'])}{over}"
            )
        lines.append(f"  GPU utilisation: {shown(policy['gpuUtilizationPercent'])}%")
        threshold = policy["idleShutdownThresholdMinutes"]
        if threshold is not None:
            lines.append(f"  idle > {threshold} min: {len(policy['idlePeriods'])} period(s)")
            for p in policy["idlePeriods"]:
                ongoing = " (ongoing)" if p["ongoing"] else ""
                lines.append(
                    f"    {p['namespace']}/{p['pod']}: {p['start']} .. {p['end']} "
                    f"({shown(p['minutes'])} min){ongoing}"
                )
        for name, forecast in policy["forecast"].items():
            if "unavailable" in forecast:
                lines.append(f"  forecast {name}: unavailable: {forecast['unavailable']}")
                continue
            days = ", ".join(shown(d["mean"]) for d in forecast["days"])
            lines.append(f"  forecast {name} next days: {days or '-'}")
            if "budgetExceededOn" in forecast:
                crossing = forecast["budgetExceededOn"] or "not within 7 days"
                lines.append(f"  budget exceeded on: {crossing}")
        for a in policy["anomalies"]:
            lines.append(
                f"  anomaly {a['series']} hour ending {a['hourEnding']}: {shown(a['observed'])} "
                f"outside [{shown(a['lower'])}, {shown(a['upper'])}]"
            )
    for invalid in document["invalidPolicies"]:
        lines.append("")
        lines.append(f"{invalid['policy']}: not measured (invalid): {'; '.join(invalid['errors'])}")
    return "\n".join(lines) + "\n"
