"""The `edgepolicy finops report` subcommand: each FinOpsPolicy's real use over a window, from
a Prometheus-compatible API, against its budget, with a 7-day forecast and anomalies.

Exit 0 with the report (budgets exceeded or not: this is a report, not a gate; the
``budgetExceeded`` fields say), 2 for bad usage or a failure (Prometheus or the cluster
unreachable, a query refused), in one line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgepolicy.errors import UsageError
from edgepolicy.finops_usage import RESOLUTION, PolicyTarget, UsageReader, policy_target
from edgepolicy.prometheus_api import PrometheusAuth, PrometheusClient

DESCRIPTION = """\
For each FinOpsPolicy (the cluster's, read through --kubeconfig as `audit` reads them, or those
under --policies), report the pods it selects and, over the window ending at --at: allocated
GPU-hours (GPUs held while Running) in total and per day against spec.costLimits.dailyGPUHours,
p50/p95/max CPU and memory use against the pods' limits and the policy's maxima, GPU
utilisation, and periods a pod held GPUs at 0% utilisation longer than
idleShutdownThresholdMinutes; then a 7-day forecast of GPU-hours and CPU (daily and weekly
seasonality), the hours outside the model's prediction interval (anomalies) and the day the
budget will be exceeded if the trend holds. All aggregation runs in PromQL. See
docs/finops-report.md."""
EXAMPLES = """\
Examples:
  edgepolicy finops report --prometheus http://prometheus.monitoring:9090
  edgepolicy finops report --prometheus http://127.0.0.1:9090 --policies policies/ \\
      --window 7d -o json
  edgepolicy finops report --prometheus https://mimir.example/prometheus \\
      --header X-Scope-OrgID=edge --bearer-token-file /var/run/secrets/token \\
      --ca-file ca.crt --at 2026-12-01T00:00:00Z -o html > finops.html
"""
OUTPUTS = ("text", "json", "html")
_DURATION = re.compile(r"(\d+)(w|d|h|m|s)")
_PARALLEL_POLICIES = 4  # policies measured at once (the client pools 4 connections)
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def add_parser(subparsers: Any) -> None:
    """Register `finops report`."""
    parser = subparsers.add_parser(
        "report",
        help="real use against budgets, forecast and anomalies, per FinOpsPolicy",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--prometheus", required=True, metavar="URL", help="base URL of the query API"
    )
    parser.add_argument(
        "--policies",
        metavar="PATH",
        nargs="+",
        action="extend",
        default=[],
        help="files or directories of FinOpsPolicy objects to report on instead of the cluster's",
    )
    parser.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig to read the cluster's policies with"
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument(
        "--window",
        default="24h",
        metavar="DURATION",
        help="span reported, whole minutes (default: 24h; e.g. 7d, 1d12h, 90m)",
    )
    parser.add_argument(
        "--at", metavar="RFC3339", help="end of the window (default: now, to the minute)"
    )
    parser.add_argument(
        "--history",
        default="14d",
        metavar="DURATION",
        help="hourly history the forecast models learn from (default: 14d; at least --window)",
    )
    parser.add_argument("--output", "-o", choices=OUTPUTS, default="text", help="report format")
    parser.add_argument(
        "--no-forecast", action="store_true", help="skip forecasts and anomaly detection"
    )
    parser.add_argument(
        "--bearer-token-file", metavar="FILE", help="send the token in FILE (read at each query)"
    )
    parser.add_argument("--ca-file", metavar="FILE", help="CA bundle verifying an https URL")
    parser.add_argument(
        "--insecure-skip-tls-verify", action="store_true", help="do not verify TLS (testing only)"
    )
    parser.add_argument(
        "--header",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="extra HTTP header, e.g. X-Scope-OrgID=TENANT for Mimir (repeatable)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="per query (default: 120)"
    )
    parser.set_defaults(func=run)


def parse_window(text: str, flag: str) -> timedelta:
    """A Prometheus-style duration (``24h``, ``7d``, ``1d12h``, ``90m``, ``2w``) of whole
    minutes (GPU-hours and idle periods are counted minute by minute).

    Raises:
        UsageError: not such a duration (``flag`` names the option).
    """
    if not text or _DURATION.sub("", text):
        raise UsageError(f"{flag} {text!r}: expected a duration such as 24h, 7d or 1d12h")
    seconds = sum(int(n) * _UNIT[unit] for n, unit in _DURATION.findall(text))
    if seconds == 0 or seconds % RESOLUTION:
        raise UsageError(f"{flag} {text!r}: must be a positive number of whole minutes")
    try:
        return timedelta(seconds=seconds)
    except OverflowError as error:
        raise UsageError(f"{flag} {text!r}: too long") from error


def parse_at(text: str | None) -> datetime:
    """The window's end: ``text`` (RFC 3339 with a zone), else now to the minute, in UTC.

    Raises:
        UsageError: not an RFC 3339 time with a zone.
    """
    if text is None:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as error:
        raise UsageError(
            f"--at {text!r}: expected an RFC 3339 time such as 2026-12-01T00:00:00Z"
        ) from error
    if at.tzinfo is None:
        raise UsageError(f"--at {text!r}: give the time zone (Z or +HH:MM)")
    return at.astimezone(UTC)


def _auth(args: argparse.Namespace) -> PrometheusAuth:
    headers = {}
    for item in args.header:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--header {item!r}: expected NAME=VALUE")
        headers[name.strip()] = value
    for flag, path in (
        ("--bearer-token-file", args.bearer_token_file),
        ("--ca-file", args.ca_file),
    ):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{flag} {path}: no such file")
    return PrometheusAuth(
        bearer_token_file=Path(args.bearer_token_file) if args.bearer_token_file else None,
        ca_file=Path(args.ca_file) if args.ca_file else None,
        headers=headers,
        insecure_skip_verify=args.insecure_skip_tls_verify,
    )


def _policies(args: argparse.Namespace) -> tuple[list[PolicyTarget], list[dict[str, Any]]]:
    """The targets of the valid FinOpsPolicies, and the invalid ones with their errors.

    Raises:
        EdgepolicyError: files unreadable, a policy without a name or twice, the cluster
            unreachable.
    """
    from edgepolicy.manifests import is_policy_object, load_paths
    from edgepolicy.policy_data import policies_to_data
    from edgepolicy.validated_policies import validate_policies

    if args.policies:
        objects = [m.obj for m in load_paths(args.policies) if is_policy_object(m.obj)]
    else:
        from edgepolicy import cluster_inventory
        from edgepolicy.cli.audit_command import connect

        api = connect(args.kubeconfig, args.context)
        try:
            objects = cluster_inventory.list_collection(api, cluster_inventory.FINOPS_POLICIES)
        finally:
            api.close()
    validated = validate_policies(o for o in objects if o.get("kind") == "FinOpsPolicy")
    policies_to_data(validated)  # refuses nameless and duplicate policies, as check does
    targets = sorted((policy_target(obj) for obj in validated.valid), key=lambda t: t.id)
    invalid = [
        {
            "policy": f"{p.namespace}/{p.name}",
            "errors": [f"{e.field or '(object)'}: {e.message}" for e in p.errors],
        }
        for p in validated.invalid
    ]
    return targets, invalid


def run(args: argparse.Namespace) -> int:
    """Run the report; return the exit code.

    Raises:
        EdgepolicyError: bad usage, policies unreadable, Prometheus failing.
    """
    from edgepolicy.finops_report import render_text, report_document

    window = parse_window(args.window, "--window")
    history = parse_window(args.history, "--history")
    end = parse_at(args.at)
    for flag, span in (("--window", window), ("--history", history)):
        try:
            end - span
        except OverflowError as error:
            raise UsageError(f"{flag} {getattr(args, flag[2:])!r}: too long") from error
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    client = PrometheusClient(args.prometheus, auth=_auth(args), timeout=args.timeout)
    try:
        targets, invalid = _policies(args)
        reader = UsageReader(client, end=end, window=window, history=history)
        with ThreadPoolExecutor(max_workers=_PARALLEL_POLICIES) as pool:
            uses = list(pool.map(reader.measure, targets))
    finally:
        client.close()
    document = report_document(
        uses,
        invalid,
        prometheus=client.url,
        window=args.window,
        start=end - window,
        end=end,
        forecast=not args.no_forecast,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif args.output == "html":
        from edgepolicy.finops_html import render_html

        sys.stdout.write(render_html(document))
    else:
        sys.stdout.write(render_text(document))
    return 0
