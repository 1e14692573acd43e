"""The `edgepolicy serve` subcommand (work in progress: replaced by its issue's implementation)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `serve`."""
    parser = subparsers.add_parser("serve", help="serve (not yet implemented)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("edgepolicy serve: not implemented yet", file=sys.stderr)
    return 2
