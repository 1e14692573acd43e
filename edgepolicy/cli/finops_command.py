"""`edgepolicy finops`: FinOps in operation, from telemetry. Its subcommands live in their own
modules (`suggest`: :mod:`edgepolicy.cli.finops_suggest_command`, `idle`:
:mod:`edgepolicy.cli.finops_idle_command`)."""

from __future__ import annotations

import argparse
from typing import Any

from edgepolicy.cli import finops_idle_command, finops_suggest_command

EXAMPLES = """\
Examples:
  edgepolicy finops suggest --prometheus http://prometheus:9090 --repo ~/policies
  edgepolicy finops idle --prometheus http://prometheus:9090 -n ai-workloads
"""


def add_parser(subparsers: Any) -> None:
    """Register `finops` and its subcommands."""
    parser = subparsers.add_parser(
        "finops",
        help="FinOps from telemetry: suggest policy changes, shut idle workloads down",
        description="FinOps in operation: measure what runs against the FinOpsPolicies (from "
        "Prometheus) and act on it. See docs/finops.md.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="finops_command", metavar="COMMAND")
    commands.required = True
    finops_suggest_command.add_parser(commands)
    finops_idle_command.add_parser(commands)
