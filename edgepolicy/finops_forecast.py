"""Forecasts and anomalies of a policy's hourly use (GPU-hours, CPU cores) with statsmodels.

Two seasonal models, both statsmodels' own, both giving their own prediction intervals:

- hourly: a structural time-series model (``UnobservedComponents``: local level, a stochastic
  daily seasonal of 24 hours, and a weekly one of 168 hours as 3 harmonics once the history
  holds two weeks). Its one-step-ahead in-sample prediction intervals flag anomalies (an hour
  outside the 99% interval); its 7-day forecast draws the band of the HTML report.
- daily totals: Holt's additive trend (``ETSModel``, plus a weekly season of 7 days once the
  history holds two weeks). Its 7-day forecast and 95% prediction intervals say what the next
  days will hold and, against a budget, on which day it is first exceeded if the trend holds.

statsmodels is the optional extra ``edgepolicy[finops]``; without it :func:`forecast_series`
raises :class:`ForecastUnavailable`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from edgepolicy.errors import EdgepolicyError

HORIZON_DAYS = 7
ANOMALY_LEVEL = 0.99
FORECAST_LEVEL = 0.95
MIN_HOURS = 48  # the hourly model needs two daily cycles
MIN_DAYS = 3  # the trend model needs three days
WEEKLY_DAYS = 14  # weekly seasonality needs two weeks


class ForecastUnavailable(EdgepolicyError):
    """No forecast: statsmodels is not installed, or the history is too short (says which)."""


@dataclass(frozen=True)
class Band:
    """The forecast mean and its prediction interval for the hour or day ending at ``at``."""

    at: datetime
    mean: Decimal
    lower: Decimal
    upper: Decimal


@dataclass(frozen=True)
class Anomaly:
    """An hour whose observation fell outside the model's one-step-ahead prediction interval."""

    at: datetime
    observed: Decimal
    expected: Decimal
    lower: Decimal
    upper: Decimal


@dataclass(frozen=True)
class SeriesForecast:
    """The next days and hours of one series, and the anomalies of its history."""

    hourly: tuple[Band, ...]
    daily: tuple[Band, ...]
    anomalies: tuple[Anomaly, ...]
    seasonality: tuple[str, ...]

    def first_day_above(self, budget: Decimal) -> Band | None:
        """The first forecast day whose mean exceeds ``budget`` (exactly), if any."""
        return next((day for day in self.daily if day.mean > budget), None)


def _exact(value: Any) -> Decimal:
    """A model float as a decimal of 4 places (the models' precision is far coarser)."""
    return Decimal(repr(float(value))).quantize(Decimal("0.0001"))


def _daily_totals(
    hourly: Sequence[tuple[datetime, Decimal]], *, total: bool
) -> list[tuple[datetime, Decimal]]:
    """Whole days (24 hourly points) counted back from the last hour: their sum or mean."""
    days = []
    for end in range(len(hourly), 23, -24):
        chunk = [value for _, value in hourly[end - 24 : end]]
        value = sum(chunk, Decimal(0))
        days.append((hourly[end - 1][0], value if total else value / 24))
    return days[::-1]


def forecast_series(
    hourly: Sequence[tuple[datetime, Decimal]], *, total: bool, anomalies_after: datetime
) -> SeriesForecast:
    """Fit the hourly and daily models to ``hourly`` (consecutive hours, oldest first) and
    forecast the next 7 days; days are sums of hours when ``total`` (GPU-hours), else means
    (CPU cores). Anomalies are reported for hours after ``anomalies_after``.

    Raises:
        ForecastUnavailable: statsmodels is missing, or the history is too short.
    """
    try:
        import numpy as np
        import pandas as pd
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel
        from statsmodels.tsa.statespace.structural import UnobservedComponents
    except ImportError as error:
        raise ForecastUnavailable(
            "forecasts need statsmodels: pip install 'edgepolicy[finops]'"
        ) from error
    if len(hourly) < MIN_HOURS:
        raise ForecastUnavailable(
            f"forecasts need at least {MIN_HOURS} hours of history, got {len(hourly)}"
        )
    values = np.array([float(v) for _, v in hourly])
    weekly = len(hourly) >= WEEKLY_DAYS * 24
    seasonality = ("daily", "weekly") if weekly else ("daily",)
    last = hourly[-1][0]
    with warnings.catch_warnings():  # convergence chatter on flat or perfectly periodic series
        warnings.simplefilter("ignore")
        model = UnobservedComponents(
            values,
            level="local level",
            seasonal=24,
            stochastic_seasonal=True,
            freq_seasonal=[{"period": 168, "harmonics": 3}] if weekly else None,
        )
        fitted = model.fit(disp=False)
        in_sample = fitted.get_prediction(start=MIN_HOURS)
        bounds = in_sample.conf_int(alpha=1 - ANOMALY_LEVEL)
        ahead = fitted.get_forecast(HORIZON_DAYS * 24)
        band = ahead.conf_int(alpha=1 - FORECAST_LEVEL)
        found = []
        for offset, (expected, (lower, upper)) in enumerate(
            zip(in_sample.predicted_mean, bounds, strict=True)
        ):
            at, observed = hourly[MIN_HOURS + offset]
            if at > anomalies_after and not lower <= float(observed) <= upper:
                found.append(Anomaly(at, observed, _exact(expected), _exact(lower), _exact(upper)))
        hours = tuple(
            Band(last + timedelta(hours=i + 1), _exact(mean), _exact(lo), _exact(hi))
            for i, (mean, (lo, hi)) in enumerate(zip(ahead.predicted_mean, band, strict=True))
        )
        days = _daily_totals(hourly, total=total)
        daily: tuple[Band, ...] = ()
        if len(days) >= MIN_DAYS:
            day_values = pd.Series([float(v) for _, v in days])
            trend = ETSModel(
                day_values,
                error="add",
                trend="add",
                seasonal="add" if len(days) >= WEEKLY_DAYS else None,
                seasonal_periods=7 if len(days) >= WEEKLY_DAYS else None,
            ).fit(disp=False)
            frame = trend.get_prediction(
                start=len(days), end=len(days) + HORIZON_DAYS - 1
            ).summary_frame(alpha=1 - FORECAST_LEVEL)
            daily = tuple(
                Band(
                    days[-1][0] + timedelta(days=i + 1),
                    _exact(row["mean"]),
                    _exact(row["pi_lower"]),
                    _exact(row["pi_upper"]),
                )
                for i, (_, row) in enumerate(frame.iterrows())
            )
    return SeriesForecast(hours, daily, tuple(found), seasonality)
