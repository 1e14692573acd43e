"""Report formats for `edgepolicy check`: one module per format, registered here.

Each format is a function turning a :class:`~edgepolicy.checking.CheckReport` into the text
to print. ``FORMATS`` feeds the ``--output`` choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edgepolicy.checking import CheckReport
from edgepolicy.output import json_report, junit, sarif, text

Formatter = Callable[[CheckReport], str]

FORMATS: Mapping[str, Formatter] = {
    "text": text.render,
    "json": json_report.render,
    "junit": junit.render,
    "sarif": sarif.render,
}


def render(report: CheckReport, output_format: str) -> str:
    """Render ``report`` in ``output_format`` (a key of ``FORMATS``).

    Raises:
        KeyError: the format is not registered (the CLI only offers registered ones).
    """
    return FORMATS[output_format](report)
