"""The `edgepolicy finops` command group: FinOps from telemetry. Each subcommand lives in its
own module with ``add_parser(subparsers)`` (``finops_report_command``: `finops report`)."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Measure what the workloads of each FinOpsPolicy really use, from the standard exporters'
series in a Prometheus-compatible API (Prometheus, Thanos, Mimir, VictoriaMetrics). See
docs/finops-report.md."""
EXAMPLES = """\
Examples:
  edgepolicy finops report --prometheus http://prometheus:9090
  edgepolicy finops report --prometheus http://127.0.0.1:9090 --policies policies/ \
      --window 7d -o html > finops.html
"""


def add_parser(subparsers: Any) -> None:
    """Register `finops` and its subcommands."""
    from edgepolicy import finops_report_command

    parser = subparsers.add_parser(
        "finops",
        help="real use against the FinOpsPolicies' budgets, from Prometheus",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="finops_command", metavar="COMMAND")
    commands.required = True
    finops_report_command.add_parser(commands)
