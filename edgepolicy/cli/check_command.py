"""The `edgepolicy check` subcommand: a CI gate that asks a real OPA about each manifest.

Exit codes: 0 nothing denied; 1 something denied (or warned, with --fail-on-warn);
2 bad usage or unreadable input (raised as EdgepolicyError, turned into a message by the CLI).
Documents skipped as not Kubernetes objects or unrendered templates are named on stderr, one
notice each; the report on stdout holds the checked objects only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from edgepolicy.checking import check_manifests
from edgepolicy.cli.flag_errors import from_flag
from edgepolicy.cli.policy_options import add_policy_options, read_policy_options
from edgepolicy.data_files import load_data_files
from edgepolicy.errors import UsageError
from edgepolicy.manifests import STDIN, ManifestSet, read_paths
from edgepolicy.output import FORMATS, render
from edgepolicy.rule_catalogue import load_rule_catalogue

DESCRIPTION = """\
Evaluate Kubernetes manifests exactly as the admission webhook will, through one real OPA.
FinOpsPolicy objects among the inputs apply to the other inputs and are validated
themselves. Documents that are not Kubernetes objects (Helm values, Chart.yaml, OPA
configuration) and unrendered templates ({{ }}) are skipped with a notice on stderr;
--strict makes them errors. Exit 0 when nothing is denied, 1 when something is (or
warned, with --fail-on-warn), 2 for bad usage or unreadable input."""
EXAMPLES = """\
Examples:
  edgepolicy check deploy/                        # every manifest under deploy/
  helm template charts/inference | edgepolicy check -
  kustomize build overlays/prod | edgepolicy check - policies/
  edgepolicy check -o sarif deploy/ > edgepolicy.sarif
  edgepolicy check --policy policy-bundle.tar.gz --verification-key key.pem deploy/
"""


def add_parser(subparsers: Any) -> None:
    """Register `check`."""
    parser = subparsers.add_parser(
        "check",
        help="check manifests against the policies (exit 1 when something is denied)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="YAML/JSON files, directories (recursive), or - for standard input",
    )
    add_policy_options(
        parser,
        data_help="YAML/JSON data merged at the root of OPA's data, e.g. "
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
        "--strict",
        action="store_true",
        help="a document that is not a Kubernetes object, or an unrendered template, is an "
        "error (exit 2) instead of skipped with a notice",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the check described by ``args``, print the report, and return the exit code.

    Raises:
        EdgepolicyError: bad usage, unreadable input, or OPA failing (exit code 2).
    """
    options = read_policy_options(args)
    with from_flag("--data"):
        data = load_data_files(args.data)
    inputs = read_paths(args.paths, strict=args.strict)
    _report_skipped(inputs, args.paths)
    report = check_manifests(
        inputs.manifests,
        opa_binary=options.opa_binary,
        policy=options.policy,
        data=data,
        namespace=args.namespace,
        verification_key=options.verification_key,
    )
    report = dataclasses.replace(report, fail_on_warn=args.fail_on_warn)
    if args.output == "sarif":  # the one format that describes the rules
        report = dataclasses.replace(
            report, rules=load_rule_catalogue(options.opa_binary, options.policy.path)
        )
    sys.stdout.write(render(report, args.output))
    return report.exit_code()


def _report_skipped(inputs: ManifestSet, paths: list[str]) -> None:
    """Name each skipped document on stderr; refuse a run given no documents at all.

    A run whose documents were all skipped checks nothing and passes (exit 0, with a notice):
    the user chose to point at mixed YAML, and ``--strict`` turns skipping into an error. A run
    given no document at all (an empty file or directory, or empty standard input from a
    failed ``helm template``) is more likely a broken pipeline than a pass.

    Raises:
        UsageError: no documents were found in ``paths``.
    """
    for skipped in inputs.skipped:
        print(f"edgepolicy: skipped {skipped}", file=sys.stderr)
    if inputs.manifests:
        return
    if not inputs.skipped:
        where = ", ".join("standard input" if path == STDIN else path for path in paths)
        hint = "" if STDIN in paths else " (expected .yaml, .yml or .json manifests)"
        raise UsageError(f"no Kubernetes objects found in {where}: nothing to check{hint}")
    count = len(inputs.skipped)
    which = f"all {count} documents were" if count > 1 else "the one document was"
    print(
        f"edgepolicy: nothing to check: {which} skipped (--strict makes them errors)",
        file=sys.stderr,
    )
