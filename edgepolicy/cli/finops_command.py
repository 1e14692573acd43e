"""`edgepolicy finops`: FinOps in operation, from telemetry. Its subcommands live in their own
modules (`report`: :mod:`edgepolicy.cli.finops_report_command`, `suggest`:
:mod:`edgepolicy.cli.finops_suggest_command`, `idle`: :mod:`edgepolicy.cli.finops_idle_command`)."""

from __future__ import annotations

import argparse
from typing import Any

from edgepolicy.cli import finops_idle_command, finops_report_command, finops_suggest_command

DESCRIPTION = """\
FinOps in operation: measure what the workloads of each FinOpsPolicy really use, from the
standard exporters' series in a Prometheus-compatible API (Prometheus, Thanos, Mimir,
VictoriaMetrics), and act on it. See docs/finops-report.md and docs/finops.md."""
EXAMPLES = """\
Examples:
  edgepolicy finops report --prometheus http://prometheus:9090
  edgepolicy finops report --prometheus http://127.0.0.1:9090 --policies policies/ \\
      --window 7d -o html > finops.html
  edgepolicy finops suggest --prometheus http://prometheus:9090 --repo ~/policies
  edgepolicy finops idle --prometheus http://prometheus:9090 -n ai-workloads
"""


def add_parser(subparsers: Any) -> None:
    """Register `finops` and its subcommands."""
    parser = subparsers.add_parser(
        "finops",
        help="real use against the FinOpsPolicies' budgets (report, suggest, idle shutdown)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="finops_command", metavar="COMMAND")
    commands.required = True
    finops_report_command.add_parser(commands)
    finops_suggest_command.add_parser(commands)
    finops_idle_command.add_parser(commands)
