"""The `edgepolicy check` subcommand (work in progress: replaced by its issue's implementation)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `check`."""
    parser = subparsers.add_parser("check", help="check (not yet implemented)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("edgepolicy check: not implemented yet", file=sys.stderr)
    return 2
