"""The `edgepolicy verify` subcommand: run a policy test suite (cases with expected verdicts).

Exit codes, as `check`: 0 every case passed; 1 a case failed (an object's verdict is not the
expected one); 2 bad usage or an unreadable case, input or data file (raised as EdgepolicyError,
turned into a message naming the file and field by the CLI).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgepolicy.checking import PolicySource
from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.output import SUITE_FORMATS, render_suite
from edgepolicy.suites import CASE_FILE, find_cases, load_case, run_cases
from edgepolicy.verification_keys import load_verification_key

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
    parser.add_argument(
        "--policy",
        metavar="DIR|BUNDLE.tar.gz",
        help="Rego directory or OPA bundle to use (default: the library shipped with edgepolicy)",
    )
    parser.add_argument(
        "--data",
        metavar="FILE",
        action="append",
        default=[],
        help="YAML/JSON data merged at the root of OPA's data for every case (repeatable)",
    )
    parser.add_argument(
        "--output",
        "-o",
        choices=list(SUITE_FORMATS),
        default="text",
        help="report format (default: text)",
    )
    parser.add_argument(
        "--verification-key",
        metavar="PEM",
        help="public key verifying a signed --policy bundle (RSA: RS256, EC: ES256/384/512)",
    )
    parser.add_argument(
        "--verification-key-id",
        metavar="ID",
        default="default",
        help="key id the bundle's signature names (default: default)",
    )
    parser.add_argument("--opa", metavar="PATH", help="OPA binary to run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the cases under ``args.paths``, print the report, and return the exit code.

    Raises:
        EdgepolicyError: bad usage, an unreadable case/input/data file, or OPA failing.
    """
    cases = [load_case(file) for file in find_cases(args.paths)]
    opa_binary = find_opa(args.opa)
    policy = PolicySource.from_path(Path(args.policy) if args.policy else library_path())
    key = (
        load_verification_key(args.verification_key, args.verification_key_id)
        if args.verification_key
        else None
    )
    report = run_cases(
        cases,
        opa_binary=opa_binary,
        policy=policy,
        data_files=args.data,
        verification_key=key,
    )
    sys.stdout.write(render_suite(report, args.output))
    return report.exit_code()
