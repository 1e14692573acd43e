"""The `edgepolicy bundle` subcommand (work in progress: replaced by its issue's implementation)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `bundle`."""
    parser = subparsers.add_parser("bundle", help="bundle (not yet implemented)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("edgepolicy bundle: not implemented yet", file=sys.stderr)
    return 2
