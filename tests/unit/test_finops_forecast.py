"""Forecasts and anomalies with the real statsmodels models on series of known shape (the same
through a real Prometheus: tests/integration/test_finops_report.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from edgepolicy.finops_forecast import ForecastUnavailable, forecast_series

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


def _hours(days: int, value: object) -> list[tuple[datetime, Decimal]]:
    return [
        (T0 + timedelta(hours=h + 1), Decimal(str(value(h))))  # type: ignore[operator]
        for h in range(days * 24)
    ]


def _office(h: int) -> int:
    """4 GPU-hours an hour 06:00-12:00, on weekdays only."""
    weekday = (h // 24) % 7 < 5
    return 4 if weekday and 6 <= h % 24 < 12 else 0


def test_a_spike_is_the_only_anomaly() -> None:
    series = _hours(7, lambda h: 4 if 6 <= h % 24 < 12 else 0)
    spike = 4 * 24 + 20
    series[spike] = (series[spike][0], Decimal(8))
    result = forecast_series(series, total=True, anomalies_after=T0)
    assert [a.at for a in result.anomalies] == [series[spike][0]]
    assert result.anomalies[0].observed == 8
    assert result.seasonality == ("daily",)


def test_two_weeks_add_the_weekly_season() -> None:
    result = forecast_series(_hours(21, _office), total=True, anomalies_after=T0)
    assert result.seasonality == ("daily", "weekly")
    assert len(result.daily) == 7 and len(result.hourly) == 7 * 24
    # The week after 21 days starting on a Monday starts on a Monday: 5 days of 24, 2 of 0.
    means = [float(day.mean) for day in result.daily]
    assert means == [pytest.approx(v, abs=2) for v in (24, 24, 24, 24, 24, 0, 0)]
    assert all(day.lower <= day.mean <= day.upper for day in result.daily)


def test_a_growing_trend_crosses_the_budget() -> None:
    series = _hours(7, lambda h: 2 * (1 + h // 24) if 6 <= h % 24 < 12 else 0)
    result = forecast_series(series, total=True, anomalies_after=T0)
    crossing = result.first_day_above(Decimal(100))
    assert crossing is not None
    assert crossing.at == series[-1][0] + timedelta(days=2)  # 96 then 108
    assert result.first_day_above(Decimal(1000)) is None


def test_too_short_a_history() -> None:
    with pytest.raises(ForecastUnavailable, match="at least 48 hours"):
        forecast_series(_hours(1, lambda h: 1), total=False, anomalies_after=T0)
