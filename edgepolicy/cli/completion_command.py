"""The `edgepolicy completion` subcommand: print a shell completion script."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgepolicy.cli.completion import SHELLS, script

EXAMPLES = """\
Examples:
  source <(edgepolicy completion bash)          # in ~/.bashrc
  source <(edgepolicy completion zsh)           # in ~/.zshrc, after compinit
  edgepolicy completion fish > ~/.config/fish/completions/edgepolicy.fish
"""


def add_parser(subparsers: Any) -> None:
    """Register `completion`."""
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for SHELL, generated from edgepolicy's own\n"
        "options: subcommands, flags, choices such as --output formats, and file names.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", metavar="SHELL", choices=SHELLS, help="bash, zsh or fish")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the completion script for ``args.shell`` and return 0.

    Raises:
        UsageError: the shell is not supported (the parser's choices prevent it).
    """
    from edgepolicy.cli import build_parser

    sys.stdout.write(script(build_parser(), args.shell))
    return 0
