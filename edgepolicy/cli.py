"""The `edgepolicy` command line: a thin layer over the library.

Each subcommand lives in its own module with ``add_parser(subparsers)``; the parser stores the
function to run as ``func``, which returns the exit code. Library errors become one clear line on
stderr and exit code 2; no stack traces reach users.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgepolicy import __version__
from edgepolicy.errors import EdgepolicyError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from bundles import command as bundle_command
    from edgepolicy import check_command
    from webhook import command as serve_command

    parser = argparse.ArgumentParser(
        prog="edgepolicy",
        description="Policy-as-code admission control for AI workloads on edge Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"edgepolicy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    check_command.add_parser(subparsers)
    serve_command.add_parser(subparsers)
    bundle_command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except EdgepolicyError as error:
        print(f"edgepolicy: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
