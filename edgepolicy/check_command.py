"""The `edgepolicy check` subcommand: a CI gate that asks a real OPA about each manifest.

Exit codes: 0 nothing denied; 1 something denied (or warned, with --fail-on-warn);
2 bad usage or unreadable input (raised as EdgepolicyError, turned into a message by the CLI).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from edgepolicy.checking import PolicySource, check_manifests
from edgepolicy.data_files import load_data_files
from edgepolicy.errors import UsageError
from edgepolicy.library import library_path
from edgepolicy.manifests import load_paths
from edgepolicy.opa_binary import find_opa
from edgepolicy.output import FORMATS, render
from edgepolicy.rule_catalogue import load_rule_catalogue
from edgepolicy.verification_keys import load_verification_key


def add_parser(subparsers: Any) -> None:
    """Register `check`."""
    parser = subparsers.add_parser(
        "check",
        help="check manifests against the policies (exit 1 when something is denied)",
        description=(
            "Evaluate Kubernetes manifests exactly as the admission webhook will, through one "
            "real OPA. FinOpsPolicy objects among the inputs apply to the other inputs and "
            "are validated themselves. Exit 0 when nothing is denied, 1 when something is "
            "(or warned, with --fail-on-warn), 2 for bad usage or unreadable input."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="YAML/JSON files or directories (recursive)"
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
        help="YAML/JSON data merged at the root of OPA's data, e.g. "
        "edgepolicy.settings.enforcementActions (repeatable)",
    )
    parser.add_argument(
        "--namespace",
        default="default",
        metavar="NS",
        help="namespace for objects that name none (default: default)",
    )
    parser.add_argument(
        "--output",
        "-o",
        choices=list(FORMATS),
        default="text",
        help="report format (default: text)",
    )
    parser.add_argument(
        "--fail-on-warn", action="store_true", help="exit 1 when an object only has warnings"
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
    """Run the check described by ``args``, print the report, and return the exit code.

    Raises:
        EdgepolicyError: bad usage, unreadable input, or OPA failing (exit code 2).
    """
    opa_binary = find_opa(args.opa)
    policy = PolicySource.from_path(Path(args.policy) if args.policy else library_path())
    key = (
        load_verification_key(args.verification_key, args.verification_key_id)
        if args.verification_key
        else None
    )
    data = load_data_files(args.data)
    manifests = load_paths(args.paths)
    if not manifests:
        raise UsageError(
            f"no Kubernetes objects found in {', '.join(args.paths)}: nothing to check "
            "(expected .yaml, .yml or .json manifests)"
        )
    report = check_manifests(
        manifests,
        opa_binary=opa_binary,
        policy=policy,
        data=data,
        namespace=args.namespace,
        verification_key=key,
    )
    report = dataclasses.replace(report, fail_on_warn=args.fail_on_warn)
    if args.output == "sarif":  # the one format that describes the rules
        report = dataclasses.replace(report, rules=load_rule_catalogue(opa_binary, policy.path))
    sys.stdout.write(render(report, args.output))
    return report.exit_code()
