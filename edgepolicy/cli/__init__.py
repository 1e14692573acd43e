"""The `edgepolicy` command line: a thin layer over the library.

Each subcommand lives in its own module with ``add_parser(subparsers)``; the parser stores the
function to run as ``func``, which returns the exit code. Library errors become one clear line on
stderr and exit code 2; no stack traces reach users. Anything else that escapes is a bug: it too
becomes one line ("internal error") and exit code 2, with the traceback only when the environment
sets ``EDGEPOLICY_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from edgepolicy import package_version
from edgepolicy.errors import EdgepolicyError

EXIT_USAGE = 2
DEBUG_VARIABLE = "EDGEPOLICY_DEBUG"
EXAMPLES = """\
Examples:
  edgepolicy check deploy/                       # a CI gate: exit 1 when something is denied
  edgepolicy audit --namespace ai-workloads      # what is running, against today's policies
  edgepolicy finops report --prometheus http://prometheus:9090 --window 7d
  helm template charts/inference | edgepolicy check -
  edgepolicy serve --tls-cert tls.crt --tls-key tls.key --policies policies/
  edgepolicy bundle build --out bundle.tar.gz
  source <(edgepolicy completion bash)

Run `edgepolicy COMMAND --help` for a command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from edgepolicy.cli import (
        audit_command,
        bundle_command,
        check_command,
        completion_command,
        finops_command,
        model_command,
        serve_command,
        verify_command,
    )

    parser = argparse.ArgumentParser(
        prog="edgepolicy",
        description="Policy-as-code admission control for AI workloads on edge Kubernetes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgepolicy {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    check_command.add_parser(subparsers)
    verify_command.add_parser(subparsers)
    audit_command.add_parser(subparsers)
    finops_command.add_parser(subparsers)
    serve_command.add_parser(subparsers)
    bundle_command.add_parser(subparsers)
    model_command.add_parser(subparsers)
    completion_command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code.

    For ``edgepolicy serve`` run as a command (``argv`` None: the process's own arguments),
    gevent patches the standard library first, before the subcommands' imports reach ``ssl``
    (see :mod:`edgepolicy.webhook.prefork`).
    """
    if argv is None and sys.argv[1:2] == ["serve"]:
        from edgepolicy.webhook.prefork import patch_standard_library

        patch_standard_library()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except EdgepolicyError as error:
        print(f"edgepolicy: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the last resort: no traceback reaches users
        if os.environ.get(DEBUG_VARIABLE) == "1":
            traceback.print_exc(file=sys.stderr)
            hint = ""
        else:
            hint = f" (set {DEBUG_VARIABLE}=1 for the traceback)"
        message = " ".join(str(error).split())  # one line, whatever the exception says
        print(
            f"edgepolicy: internal error: {type(error).__name__}: {message}{hint}", file=sys.stderr
        )
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
