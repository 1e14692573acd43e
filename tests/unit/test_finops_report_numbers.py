"""The report's numbers: JSON numbers, GPU-hours as exact as a float gets, Prometheus floats
without their noise, and 4 places for people."""

from __future__ import annotations

from decimal import Decimal

from edgepolicy.finops_report import number, shown


def test_exact_gpu_hours_are_the_nearest_float() -> None:
    per_day = Decimal(172) * 86400 / 604800  # 172 GPU-hours over 7 days
    assert number(per_day, exact=True) == 172 / 7
    assert number(Decimal("0.1"), exact=True) == 0.1
    assert number(Decimal("24.000"), exact=True) == 24
    assert isinstance(number(Decimal("24.000"), exact=True), int)


def test_measured_floats_lose_their_noise_only() -> None:
    assert number(Decimal("1.4999999999999998")) == 1.5
    assert number(Decimal("53.333333333333336")) == 53.333333333
    assert number(None) is None


def test_shown_rounds_for_people() -> None:
    assert shown(172 / 7) == "24.5714"
    assert shown(1.5) == "1.5"
    assert shown(24) == "24"
    assert shown(None) == "-"
