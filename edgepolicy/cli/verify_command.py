"""The `edgepolicy verify` subcommand: run a policy test suite (cases with expected verdicts).

Exit codes, as `check`: 0 every case passed; 1 a case failed (an object's verdict is not the
expected one); 2 bad usage or an unreadable case, input or data file (raised as EdgepolicyError,
turned into a message naming the file and field by the CLI).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgepolicy.cli.policy_options import add_policy_options, read_policy_options
from edgepolicy.output import SUITE_FORMATS, render_suite
from edgepolicy.suites import CASE_FILE, find_cases, load_case, run_cases

EXAMPLE = f"""\
Examples:
  edgepolicy verify policy-tests/
  edgepolicy verify --policy rego/ --data settings.yaml -o junit policy-tests/ > verify.xml
  edgepolicy verify -o sarif policy-tests/ > verify.sarif   # rule edgepolicy.verify

A case is a directory with an {CASE_FILE}:

  apiVersion: edgepolicy.apexlogic.com/v1alpha1
  kind: PolicyTest
  inputs: [manifests/]          # FinOpsPolicies and workloads, relative to this file
  data: [data.yaml]             # optional, merged after --data
  expected:
    Deployment/inference: {{allowed: false, violations: [finops.cpu]}}
    FinOpsPolicy/budget: {{allowed: true}}

See docs/verify.md.
"""


def add_parser(subparsers: Any) -> None:
    """Register `verify`."""
    parser = subparsers.add_parser(
        "verify",
        help="run policy test cases and compare their verdicts with the expected ones",
        description=(
            f"Find every {CASE_FILE} under PATH, decide each case's inputs exactly as "
            "`edgepolicy check` would (real OPA), and compare every object's verdict with the "
            "expected one. Exit 0 when every case passes, 1 when one fails, 2 for bad usage or "
            "an unreadable case, input or data file."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=f"case directories, directories searched for {CASE_FILE}, or case files",
    )
    add_policy_options(
        parser,
        data_help="YAML/JSON data merged at the root of OPA's data for every case (repeatable)",
    )
    parser.add_argument(
        "--output",
        "-o",
        choices=list(SUITE_FORMATS),
        default="text",
        help="report format (default: text)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the cases under ``args.paths``, print the report, and return the exit code.

    Raises:
        EdgepolicyError: bad usage, an unreadable case/input/data file, or OPA failing.
    """
    cases = [load_case(file) for file in find_cases(args.paths)]
    options = read_policy_options(args)
    report = run_cases(
        cases,
        opa_binary=options.opa_binary,
        policy=options.policy,
        data_files=args.data,
        verification_key=options.verification_key,
    )
    sys.stdout.write(render_suite(report, args.output))
    return report.exit_code()
