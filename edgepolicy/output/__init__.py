"""Report formats: one module per format, registered here.

Each format renders a ``check`` :class:`~edgepolicy.checking.CheckReport` (``FORMATS`` feeds
``check --output``) and a ``verify`` :class:`~edgepolicy.suites.SuiteReport` (``SUITE_FORMATS``
feeds ``verify --output``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edgepolicy.checking import CheckReport
from edgepolicy.output import json_report, junit, sarif, text
from edgepolicy.suites import SuiteReport

Formatter = Callable[[CheckReport], str]
SuiteFormatter = Callable[[SuiteReport], str]

FORMATS: Mapping[str, Formatter] = {
    "text": text.render,
    "json": json_report.render,
    "junit": junit.render,
    "sarif": sarif.render,
}

SUITE_FORMATS: Mapping[str, SuiteFormatter] = {
    "text": text.render_suite,
    "json": json_report.render_suite,
    "junit": junit.render_suite,
    "sarif": sarif.render_suite,
}


def render(report: CheckReport, output_format: str) -> str:
    """Render ``report`` in ``output_format`` (a key of ``FORMATS``).

    Raises:
        KeyError: the format is not registered (the CLI only offers registered ones).
    """
    return FORMATS[output_format](report)


def render_suite(report: SuiteReport, output_format: str) -> str:
    """Render ``report`` in ``output_format`` (a key of ``SUITE_FORMATS``).

    Raises:
        KeyError: the format is not registered (the CLI only offers registered ones).
    """
    return SUITE_FORMATS[output_format](report)
