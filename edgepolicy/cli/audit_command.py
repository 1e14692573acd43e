"""The `edgepolicy audit` subcommand: decide every workload and HPA stored in a cluster against
the current policies, through the same decision document as ``check`` and the webhook.

Once (the default) it prints a ``check`` report and exits as ``check`` does: 0 nothing denied,
1 something denied (or warned, with --fail-on-warn), 2 bad usage or a failure (the API server or
OPA unreachable). It reads the cluster and writes nothing.

With ``--interval`` it runs until SIGTERM or SIGINT, one audit per interval, and records each
run (:mod:`edgepolicy.audit_recorder`: every FinOpsPolicy's status, an Event on each offending
object) and its metrics on ``/metrics`` (:mod:`edgepolicy.audit_metrics`). A failed run is
logged and counted, and the next interval tries again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from edgepolicy import audit_records, cluster_inventory, kube
from edgepolicy import kubeconfig as kubeconfig_files
from edgepolicy.audit_recorder import AuditRecorder
from edgepolicy.auditing import audit_objects
from edgepolicy.checking import CheckReport, CheckSession
from edgepolicy.cli.flag_errors import from_flag
from edgepolicy.cli.policy_options import (
    add_policy_options,
    opa_binary,
    policy_path,
    read_policy_options,
)
from edgepolicy.data_files import load_data_files
from edgepolicy.errors import EdgepolicyError, OpaError, UsageError
from edgepolicy.manifests import is_policy_object, load_paths
from edgepolicy.opa_client import OpaClient
from edgepolicy.output import FORMATS, render
from edgepolicy.policy_data import policies_to_data, policy_key
from edgepolicy.rule_catalogue import load_rule_catalogue
from edgepolicy.validated_policies import validate_policies

if TYPE_CHECKING:  # prometheus_client must not load before serve sets its multiprocess mode
    from edgepolicy.audit_metrics import AuditMetrics

DESCRIPTION = """\
Decide every workload (Pod, Deployment, StatefulSet, ReplicaSet, DaemonSet, Job, CronJob) and
HPA stored in the cluster against the current policies: the cluster's FinOpsPolicies, plus
policy objects under --policies, through the same decision document as `check` and the
webhook. Each object is judged as the no-op UPDATE the API server would send if it were written
again (objects being deleted are skipped). Lists are read in pages (--page-size). Exit 0 when
nothing is denied, 1 when something is (or warned, with --fail-on-warn), 2 for bad usage or
failures. With --interval it runs continuously (the in-cluster Deployment): each run writes
every FinOpsPolicy's status, a PolicyViolation Event on each offending object, and metrics on
/metrics. See docs/audit.md."""
EXAMPLES = """\
Examples:
  edgepolicy audit                                  # the whole cluster, text report
  edgepolicy audit --namespace ai-workloads -o json
  edgepolicy audit --policies policies/ -o sarif > audit.sarif
  edgepolicy audit --opa-url http://127.0.0.1:8181 --interval 60s --metrics-port 9090
"""
DEFAULT_METRICS_PORT = 9090
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": Decimal(3600), "m": Decimal(60), "s": Decimal(1), "ms": Decimal("0.001")}
_OPA_TIMEOUT_SECONDS = 30.0
_PARALLEL_REQUESTS = 4


def add_parser(subparsers: Any) -> None:
    """Register `audit`."""
    parser = subparsers.add_parser(
        "audit",
        help="decide every workload stored in a cluster (exit 1 when something is denied)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig to use (default: $KUBECONFIG or ~/.kube/config, else the pod's "
        "service account)",
    )
    parser.add_argument(
        "--context", metavar="NAME", help="kubeconfig context to use (default: its current-context)"
    )
    parser.add_argument(
        "--namespace", "-n", metavar="NS", help="audit only this namespace (default: all)"
    )
    parser.add_argument(
        "--output", "-o", choices=list(FORMATS), default="text", help="report format"
    )
    parser.add_argument(
        "--fail-on-warn", action="store_true", help="exit 1 when an object only has warnings"
    )
    parser.add_argument(
        "--policies",
        metavar="PATH",
        action="append",
        default=[],
        help="files or directories of FinOpsPolicy objects applied besides the cluster's "
        "(a cluster object of the same namespace and name wins; repeatable)",
    )
    add_policy_options(
        parser,
        policy_help="Rego directory or OPA bundle for the local OPA (default: the shipped library)",
        data_help="YAML/JSON data merged at the root of the local OPA's data (repeatable)",
        key_help="public key verifying a signed --policy bundle",
    )
    parser.add_argument(
        "--opa-url",
        metavar="URL",
        help="ask this OPA (e.g. the sidecar fed by the policy bundle) instead of starting one",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=500,
        metavar="N",
        help="objects per list request (default: 500)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time for each Kubernetes API request (default: 30)",
    )
    parser.add_argument(
        "--interval",
        metavar="DURATION",
        help="run continuously, one audit per DURATION (e.g. 60s, 5m), recording each run's "
        "results in the cluster and on /metrics",
    )
    parser.add_argument(
        "--violations-limit",
        type=int,
        default=audit_records.DEFAULT_VIOLATIONS_LIMIT,
        metavar="N",
        help="violations listed in each policy's status (default: 20; totalViolations counts all)",
    )
    parser.add_argument(
        "--event-refresh",
        default="30m",
        metavar="DURATION",
        help="with --interval, how often the count of a lasting finding's Event is written "
        "(default: 30m, as client-go's event recorder; the first repeat is written at once)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        metavar="PORT",
        help=f"port of /metrics with --interval (default: {DEFAULT_METRICS_PORT})",
    )
    parser.add_argument(
        "--metrics-host",
        default="0.0.0.0",
        metavar="HOST",
        help="address of /metrics with --interval (default: 0.0.0.0)",
    )
    parser.set_defaults(func=run)


def parse_interval(text: str, flag: str = "--interval") -> float:
    """Return the seconds of a Go-style duration (``60s``, ``5m``, ``1h30m``, ``1500ms``);
    ``flag`` names the option in errors.

    Raises:
        UsageError: not such a duration, or shorter than one second.
    """
    if not text or _DURATION.sub("", text):
        raise UsageError(f"{flag} {text!r}: expected a duration such as 60s, 5m or 1h30m")
    try:
        seconds = sum(
            (Decimal(value) * _UNIT_SECONDS[unit] for value, unit in _DURATION.findall(text)),
            Decimal(0),
        )
    except InvalidOperation as error:
        raise UsageError(f"{flag} {text!r}: not a duration") from error
    if seconds < 1:
        raise UsageError(f"{flag} {text!r}: must be at least 1s")
    return float(seconds)


def _check_args(args: argparse.Namespace) -> None:
    if args.opa_url and (args.policy or args.data or args.opa or args.verification_key):
        raise UsageError(
            "--policy, --data, --opa and --verification-key configure the local OPA; with "
            "--opa-url the policy comes from that OPA"
        )
    if args.page_size < 1:
        raise UsageError(f"--page-size must be at least 1, got {args.page_size}")
    if args.violations_limit < 0:
        raise UsageError(f"--violations-limit must be 0 or more, got {args.violations_limit}")
    if not 0 < args.metrics_port < 65536:
        raise UsageError(f"--metrics-port must be between 1 and 65535, got {args.metrics_port}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")


def connect(kubeconfig: str | None, context: str | None = None) -> kube.KubeApi:
    """Return the client an audit uses, found as kubectl finds it: ``--kubeconfig``, else the
    ``$KUBECONFIG`` files or ``~/.kube/config`` when present (``--context`` or their current
    context), else the pod's service account.

    Raises:
        UsageError: the kubeconfig is unusable, or there is no way to reach a cluster.
    """
    explicit = Path(kubeconfig) if kubeconfig is not None else None
    if explicit is not None and not explicit.is_file():
        raise UsageError(f"--kubeconfig {kubeconfig}: no such file")
    searched = kubeconfig_files.search_paths(explicit)
    if context is not None or any(path.is_file() for path in searched):
        return kube.from_kubeconfig(explicit, context=context)
    api = kube.in_cluster()
    if api is None:
        names = ", ".join(str(path) for path in searched)
        raise UsageError(
            f"no cluster to audit: give --kubeconfig FILE (no {names}, and not running in a pod)"
        )
    return api


def file_policies(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The FinOpsPolicy objects under ``--policies``.

    Raises:
        InputError: a file cannot be read, or two policies share a namespace and name.
    """
    if not paths:
        return []
    objects = [m.obj for m in load_paths(paths) if is_policy_object(m.obj)]
    policies_to_data(validate_policies(objects))  # refuses nameless and duplicate policies
    return [obj for obj in objects if obj.get("kind") == "FinOpsPolicy"]


@contextlib.contextmanager
def policy_opa(args: argparse.Namespace) -> Iterator[OpaClient]:
    """The OPA to ask: the one at ``--opa-url``, else a local one with the policy and data.

    Raises:
        EdgepolicyError: OPA cannot be found or started, or the policy options are wrong.
    """
    if args.opa_url:
        client = OpaClient(args.opa_url, timeout=_OPA_TIMEOUT_SECONDS, maxsize=_PARALLEL_REQUESTS)
        try:
            yield client
        finally:
            client.close()
        return
    options = read_policy_options(args)
    with from_flag("--data"):
        data = load_data_files(args.data)
    session = CheckSession(
        opa_binary=options.opa_binary,
        policy=options.policy,
        data=data,
        verification_key=options.verification_key,
    )
    with session:
        yield session.client


class _Audit:
    """One configured audit: what to list, which policies apply, whom to ask."""

    def __init__(self, args: argparse.Namespace, api: kube.KubeApi, opa: OpaClient) -> None:
        self._args = args
        self._api = api
        self._opa = opa
        self._file_policies = file_policies(args.policies)

    def run(self) -> tuple[CheckReport, list[dict[str, Any]], dict[str, Mapping[str, Any]]]:
        """List and decide once; return the report, the cluster's FinOpsPolicies and every
        known policy by ``namespace/name`` (data, files, cluster: later wins).

        Raises:
            KubernetesApiError: a list could not be read.
            OpaError: OPA failed.
        """
        options = {
            "namespace": self._args.namespace,
            "page_size": self._args.page_size,
            "timeout": self._args.timeout,
        }
        cluster_policies = cluster_inventory.list_collection(
            self._api, cluster_inventory.FINOPS_POLICIES, **options
        )
        objects = cluster_inventory.list_workloads(self._api, **options)
        policies = [*self._file_policies, *cluster_policies]
        report = audit_objects(objects, policies=policies, decide=self._opa.decide)
        report = dataclasses.replace(report, fail_on_warn=self._args.fail_on_warn)
        known = {**self._data_policies(), **{"/".join(policy_key(p)): p for p in policies}}
        return report, cluster_policies, known

    def _data_policies(self) -> dict[str, Mapping[str, Any]]:
        """The FinOpsPolicies in OPA's data (a bundle's), by ``namespace/name``."""
        try:
            data = self._opa.query("edgepolicy/policies/finops")
        except OpaError:  # none in data
            return {}
        found: dict[str, Mapping[str, Any]] = {}
        if isinstance(data, Mapping):
            for namespace, by_name in data.items():
                if isinstance(by_name, Mapping):
                    for name, obj in by_name.items():
                        if isinstance(obj, Mapping):
                            found[f"{namespace}/{name}"] = obj
        return found


def run(args: argparse.Namespace) -> int:
    """Run the audit described by ``args``; return the exit code.

    Raises:
        EdgepolicyError: bad usage, an unusable kubeconfig, the API server or OPA failing.
    """
    _check_args(args)
    interval = parse_interval(args.interval) if args.interval else None
    refresh = parse_interval(args.event_refresh, "--event-refresh")
    api = connect(args.kubeconfig, args.context)
    try:
        with policy_opa(args) as opa:
            audit = _Audit(args, api, opa)
            if interval is not None:
                return _run_forever(args, audit, api, interval, refresh)
            report, _, _ = audit.run()
    finally:
        api.close()
    if args.output == "sarif":
        report = dataclasses.replace(
            report, rules=load_rule_catalogue(opa_binary(args), policy_path(args))
        )
    sys.stdout.write(render(report, args.output))
    return report.exit_code()


def _run_forever(
    args: argparse.Namespace, audit: _Audit, api: kube.KubeApi, interval: float, refresh: float
) -> int:
    """Audit every ``interval`` seconds until SIGTERM or SIGINT; record each run (Event counts
    written every ``refresh`` seconds)."""
    from prometheus_client import start_http_server

    from edgepolicy.audit_metrics import AuditMetrics

    metrics = AuditMetrics()
    try:
        server, thread = start_http_server(
            args.metrics_port, addr=args.metrics_host, registry=metrics.registry
        )
    except OSError as error:
        raise UsageError(
            f"--metrics-port {args.metrics_port}: cannot listen on "
            f"{args.metrics_host}:{args.metrics_port}: {error.strerror}"
        ) from error
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    instance = os.environ.get("POD_NAME") or socket.gethostname()
    recorder = AuditRecorder(
        api,
        instance=instance,
        violations_limit=args.violations_limit,
        timeout=args.timeout,
        event_refresh=refresh,
    )
    _log(
        f"auditing every {interval:g}s{' in namespace ' + args.namespace if args.namespace else ''}"
        f", metrics on http://{args.metrics_host}:{args.metrics_port}/metrics"
    )
    try:
        while not stop.is_set():
            begun = time.monotonic()
            _one_run(audit, recorder, metrics)
            stop.wait(max(0.0, interval - (time.monotonic() - begun)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
        thread.join(timeout=5)
    _log("stopped")
    return 0


def _one_run(audit: _Audit, recorder: AuditRecorder, metrics: AuditMetrics) -> None:
    """One audit and its recording; a failure is logged and counted, never raised."""
    at = datetime.now(UTC)
    begun = time.monotonic()
    try:
        report, cluster_policies, known = audit.run()
    except EdgepolicyError as error:
        metrics.errors.labels(stage="run").inc()
        _log(f"audit failed: {error}")
        return
    found = audit_records.violations(report)
    summary = recorder.record(found, cluster_policies, at=at)
    for problem in summary.errors:
        metrics.errors.labels(stage="record").inc()
        _log(f"could not record {problem}")
    routes = {policy: audit_records.alert_route(obj) for policy, obj in known.items()}
    seconds = time.monotonic() - begun
    metrics.completed(
        audit_records.violation_counts(found, routes),
        started=at.timestamp(),
        seconds=seconds,
        objects=len(report.results),
    )
    _log(
        f"{len(report.results)} object(s) audited in {seconds:.2f}s: {len(found)} finding(s), "
        f"{report.denied} denied; {summary.statuses} status(es) written, "
        f"{summary.events_created} event(s) created, {summary.events_counted} counted again "
        f"({summary.events_deferred} more counted until their refresh)"
    )


def _log(message: str) -> None:
    print(f"edgepolicy audit: {message}", file=sys.stderr, flush=True)
