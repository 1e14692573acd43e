"""The `finops report` document as one self-contained HTML file: per policy, GPU-hours per day
against the budget with the forecast days and their prediction interval, and the hourly
GPU-hours and CPU cores with the forecast band and the anomalies, as inline SVG drawn here
(no script, no stylesheet or font from elsewhere)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from edgepolicy.finops_report import shown

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 36
_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:900px}
h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{padding:2px 10px;text-align:right}
th{text-align:left}.over{color:#b00020;font-weight:bold}.ok{color:#1b5e20}
svg{display:block;margin:8px 0;background:#fafafa}
svg text{font-size:11px;fill:#444}.legend{font-size:12px;color:#555}
"""


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _Frame:
    """Maps data (unix seconds, value) to SVG coordinates and draws the axes."""

    def __init__(self, x0: float, x1: float, y1: float) -> None:
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        self.y1 = y1 * 1.1 if y1 > 0 else 1.0

    def x(self, t: float) -> float:
        return LEFT + (t - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return HEIGHT - BOTTOM - v / self.y1 * (HEIGHT - TOP - BOTTOM)

    def axes(self, title: str, unit: str) -> list[str]:
        parts = [
            f'<text x="{LEFT}" y="14" font-weight="bold">{escape(title)}</text>',
            f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
            f'y2="{HEIGHT - BOTTOM}" stroke="#888"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#888"/>',
        ]
        for i in range(5):
            v = self.y1 * i / 4
            parts.append(
                f'<text x="{LEFT - 4}" y="{self.y(v) + 4:.1f}" text-anchor="end">{v:.4g}</text>'
            )
        ticks = 6
        for i in range(ticks + 1):
            t = self.x0 + (self.x1 - self.x0) * i / ticks
            label = datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")
            anchor = "end" if i == ticks else "start" if i == 0 else "middle"
            parts.append(
                f'<text x="{self.x(t):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="{anchor}">'
                f"{label}</text>"
            )
        parts.append(f'<text x="{LEFT}" y="{HEIGHT - 4}">{escape(unit)} (times UTC)</text>')
        return parts


def _svg(parts: Sequence[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        + "".join(parts)
        + "</svg>"
    )


def _days_chart(policy: Mapping[str, Any]) -> str:
    """GPU-hours of each day of the window, the forecast days and the budget."""
    days = policy["days"]
    forecast = policy["forecast"].get("gpuHours", {})
    ahead = forecast.get("days", [])
    budget = policy["dailyGPUHours"]
    if not days:
        return ""
    highest = max([d["gpuHours"] for d in days] + [d["upper"] for d in ahead] + [budget or 0])
    start = _time(days[0]["start"])
    end = _time(ahead[-1]["end"]) if ahead else _time(days[-1]["end"])
    frame = _Frame(start, end, highest)
    parts = frame.axes(f"{policy['policy']}: GPU-hours per day", "GPU-hours")
    for day in days:
        x0, x1 = frame.x(_time(day["start"])), frame.x(_time(day["end"]))
        colour = "#c62828" if day["budgetExceeded"] else "#1565c0"
        y = frame.y(day["gpuHours"])
        parts.append(
            f'<rect x="{x0 + 1:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 2, 1):.1f}" '
            f'height="{HEIGHT - BOTTOM - y:.1f}" fill="{colour}">'
            f"<title>{escape(day['end'])}: {shown(day['gpuHours'])} GPU-h</title></rect>"
        )
    previous = _time(days[-1]["end"])
    for day in ahead:
        t = _time(day["end"])
        x0, x1 = frame.x(previous), frame.x(t)
        top, bottom = frame.y(max(day["upper"], 0)), frame.y(max(day["lower"], 0))
        parts.append(
            f'<rect x="{x0 + 1:.1f}" y="{top:.1f}" width="{max(x1 - x0 - 2, 1):.1f}" '
            f'height="{max(bottom - top, 1):.1f}" fill="#ffb300" opacity="0.35">'
            f"<title>forecast {escape(day['end'])}: {day['mean']} "
            f"[{day['lower']}, {day['upper']}]</title></rect>"
        )
        parts.append(
            f'<line x1="{x0 + 1:.1f}" x2="{x1 - 1:.1f}" y1="{frame.y(day["mean"]):.1f}" '
            f'y2="{frame.y(day["mean"]):.1f}" stroke="#e65100" stroke-width="2"/>'
        )
        previous = t
    if budget is not None:
        y = frame.y(budget)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#b00020" stroke-dasharray="6 3"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y - 3:.1f}" text-anchor="end">budget {budget}</text>'
        )
    return _svg(parts, f"GPU-hours per day of {policy['policy']}")


def _hourly_chart(policy: Mapping[str, Any], name: str, title: str, unit: str) -> str:
    """The hourly series, the forecast band and mean, and the anomalies."""
    history = policy["hourly"][name]
    forecast = policy["forecast"].get(name, {})
    hours = forecast.get("hours", [])
    if not history:
        return ""
    points = [(_time(t), v) for t, v in history]
    band = [(_time(t), mean, lo, hi) for t, mean, lo, hi in hours]
    highest = max([v for _, v in points] + [hi for *_, hi in band])
    frame = _Frame(points[0][0], band[-1][0] if band else points[-1][0], highest)
    parts = frame.axes(f"{policy['policy']}: {title}", unit)
    if band:
        upper = " ".join(f"{frame.x(t):.1f},{frame.y(max(hi, 0)):.1f}" for t, _, _, hi in band)
        lower = " ".join(
            f"{frame.x(t):.1f},{frame.y(max(lo, 0)):.1f}" for t, _, lo, _ in reversed(band)
        )
        parts.append(f'<polygon points="{upper} {lower}" fill="#ffb300" opacity="0.35"/>')
        mean = " ".join(f"{frame.x(t):.1f},{frame.y(m):.1f}" for t, m, _, _ in band)
        parts.append(f'<polyline points="{mean}" fill="none" stroke="#e65100"/>')
    line = " ".join(f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#1565c0"/>')
    for anomaly in policy["anomalies"]:
        if anomaly["series"] == name:
            x, y = frame.x(_time(anomaly["hourEnding"])), frame.y(anomaly["observed"])
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="none" stroke="#b00020" '
                f'stroke-width="2"><title>anomaly {escape(anomaly["hourEnding"])}: '
                f"{shown(anomaly['observed'])} outside [{shown(anomaly['lower'])}, "
                f"{shown(anomaly['upper'])}]"
                "</title></circle>"
            )
    return _svg(parts, f"{title} of {policy['policy']}")


def _triple(stats: Mapping[str, Any]) -> str:
    return " / ".join(shown(stats[key]) for key in ("p50", "p95", "max"))


def _summary(policy: Mapping[str, Any]) -> str:
    verdict = (
        '<span class="over">over budget</span>'
        if policy["budgetExceeded"]
        else '<span class="ok">within budget</span>'
    )
    crossing = policy["forecast"].get("gpuHours", {}).get("budgetExceededOn")
    rows = [
        ("pods", len(policy["pods"])),
        ("GPU-hours", shown(policy["gpuHours"])),
        ("GPU-hours per day", shown(policy["gpuHoursPerDay"])),
        ("dailyGPUHours", shown(policy["dailyGPUHours"])),
        ("CPU cores p50 / p95 / max", _triple(policy["cpuCores"])),
        ("memory GiB p50 / p95 / max", _triple(policy["memoryGiB"])),
        ("GPU utilisation %", shown(policy["gpuUtilizationPercent"])),
        ("idle periods", len(policy["idlePeriods"])),
        ("anomalies", len(policy["anomalies"])),
        ("budget exceeded on (forecast)", crossing or "-"),
    ]
    cells = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str('-' if v is None else v))}</td></tr>"
        for k, v in rows
    )
    return f"<p>{verdict}</p><table>{cells}</table>"


def render_html(document: Mapping[str, Any]) -> str:
    """The whole report as one HTML page."""
    sections = []
    for policy in document["policies"]:
        sections.append(
            f"<h2>{escape(policy['policy'])}</h2>"
            + _summary(policy)
            + _days_chart(policy)
            + _hourly_chart(policy, "gpuHours", "GPU-hours per hour", "GPU-hours")
            + _hourly_chart(policy, "cpuCores", "CPU cores (hourly mean)", "cores")
        )
    for invalid in document["invalidPolicies"]:
        sections.append(
            f'<h2>{escape(invalid["policy"])}</h2><p class="over">not measured: '
            f"{escape('; '.join(invalid['errors']))}</p>"
        )
    title = f"FinOps report {document['start']} .. {document['end']}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        '<p class="legend">Blue: measured. Red bars: a day over the budget (dashed line). '
        "Orange: the forecast mean and its 95% prediction interval. Red circles: anomalies "
        "(outside the model's 99% one-step-ahead interval).</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
