"""`edgepolicy finops idle`: scale Deployments and StatefulSets idle past their FinOpsPolicy's
``idleShutdownThresholdMinutes`` to zero (:mod:`edgepolicy.idle_shutdown`), once or, with
``--interval``, until SIGTERM (the opt-in loop of the audit Deployment), with metrics."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from edgepolicy import cluster_inventory, kube
from edgepolicy.cli.audit_command import connect, file_policies, parse_interval, policy_opa
from edgepolicy.cli.finops_suggest_command import parse_time
from edgepolicy.cli.policy_options import add_policy_options
from edgepolicy.errors import EdgepolicyError, UsageError
from edgepolicy.idle_shutdown import (
    DEFAULT_ACTIVITY_QUERY,
    PREVIOUS_REPLICAS_ANNOTATION,
    IdleOutcome,
    IdleShutdown,
)
from edgepolicy.prometheus_api import PrometheusClient

DESCRIPTION = f"""\
Scale each Deployment and StatefulSet that a FinOpsPolicy with
optimizationRules.idleShutdownThresholdMinutes selects to zero when it has been idle (no GPU
utilisation, DCGM_FI_DEV_GPU_UTIL, and no request activity, --activity-query) for longer than the
threshold, as Prometheus shows. OPA decides (the same policies as the audit; the smallest
threshold of the applying policies governs) and the enforcement action of finops.idle-shutdown
applies: deny scales to zero through the scale subresource, after writing the replica count to
the annotation {PREVIOUS_REPLICAS_ANNOTATION}, and emits an IdleShutdown Event; warn only
emits the Event and the alert metric; dryrun only reports. Without --interval it runs once and
prints what it did. With --interval it runs until SIGTERM and publishes, on /metrics, the
policy's idleShutdown alert metric and each policy's GPU-hours of the last 24 hours against
dailyGPUHours. See docs/finops.md (and how it coexists with Argo CD, Flux and HPAs)."""
EXAMPLES = """\
Examples:
  edgepolicy finops idle --prometheus http://prometheus:9090                # once, text report
  edgepolicy finops idle --prometheus http://prometheus:9090 -n ai -o json
  edgepolicy finops idle --prometheus http://prometheus:9090 \\
      --activity-query 'sum by (namespace, pod) (rate(nv_inference_request_success[5m]))'
  edgepolicy finops idle --prometheus http://prometheus:9090 --opa-url http://127.0.0.1:8181 \\
      --interval 60s --metrics-port 9091                                   # in the cluster
"""
DEFAULT_METRICS_PORT = 9091


def add_parser(subparsers: Any) -> None:
    """Register `finops idle`."""
    parser = subparsers.add_parser(
        "idle",
        help="scale workloads idle past their FinOpsPolicy's threshold to zero",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus API URL")
    parser.add_argument(
        "--activity-query",
        default=DEFAULT_ACTIVITY_QUERY,
        metavar="PROMQL",
        help="request activity per pod: a PromQL expression with one series per namespace and "
        f"pod, above 0 when the pod serves (default: {DEFAULT_ACTIVITY_QUERY})",
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to use")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument("--namespace", "-n", metavar="NS", help="only this namespace")
    parser.add_argument(
        "--policies",
        metavar="PATH",
        action="append",
        default=[],
        help="files or directories of FinOpsPolicy objects besides the cluster's (repeatable)",
    )
    add_policy_options(
        parser,
        policy_help="Rego directory or OPA bundle for the local OPA (default: the shipped library)",
        data_help="YAML/JSON data merged at the root of the local OPA's data (repeatable)",
        key_help="public key verifying a signed --policy bundle",
    )
    parser.add_argument("--opa-url", metavar="URL", help="ask this OPA instead of starting one")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only report, as if finops.idle-shutdown were dryrun (with --interval: the "
        "GPU-budget metrics without any shutdown)",
    )
    parser.add_argument(
        "--output", "-o", choices=("text", "json"), default="text", help="report format (once)"
    )
    parser.add_argument(
        "--at", metavar="RFC3339", help="judge idleness at this time (once; default: now)"
    )
    parser.add_argument(
        "--interval", metavar="DURATION", help="run continuously, once per DURATION (e.g. 60s)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        metavar="PORT",
        help=f"port of /metrics with --interval (default: {DEFAULT_METRICS_PORT})",
    )
    parser.add_argument(
        "--metrics-host", default="0.0.0.0", metavar="HOST", help="address of /metrics"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time for each Kubernetes API and Prometheus request (default: 30)",
    )
    parser.set_defaults(func=run)


class _Idle:
    """One configured idle-shutdown pass: what to list, which policies, whom to ask."""

    def __init__(self, args: argparse.Namespace, api: kube.KubeApi, shutdown: IdleShutdown):
        self._args = args
        self._api = api
        self._shutdown = shutdown
        self._file_policies = file_policies(args.policies)

    def run(self, at: datetime) -> tuple[list[IdleOutcome], list[dict[str, object]]]:
        options = {"namespace": self._args.namespace, "timeout": self._args.timeout}
        cluster = cluster_inventory.list_collection(
            self._api, cluster_inventory.FINOPS_POLICIES, **options
        )
        workloads = []
        for kind in ("Deployment", "StatefulSet"):
            collection = cluster_inventory.collection_of(kind)
            assert collection is not None  # both are listed kinds
            workloads.extend(cluster_inventory.list_collection(self._api, collection, **options))
        policies = [*self._file_policies, *cluster]
        return self._shutdown.run(workloads, policies, at=at), policies


def run(args: argparse.Namespace) -> int:
    """Run once (print the outcomes) or continuously; return the exit code (0).

    Raises:
        EdgepolicyError: bad usage, an unusable kubeconfig, the API server, OPA or Prometheus
            failing (once; the loop logs and counts failures).
    """
    if args.opa_url and (args.policy or args.data or args.opa or args.verification_key):
        raise UsageError("--policy, --data, --opa and --verification-key configure the local OPA")
    interval = parse_interval(args.interval) if args.interval else None
    at = parse_time(args.at)
    if interval is not None and at is not None:
        raise UsageError("--at judges one moment: it cannot go with --interval")
    api = connect(args.kubeconfig, args.context)
    prometheus = PrometheusClient(args.prometheus, timeout=args.timeout)
    try:
        with policy_opa(args) as opa:
            shutdown = IdleShutdown(
                api,
                prometheus,
                opa.query,
                activity_query=args.activity_query,
                instance=os.environ.get("POD_NAME") or socket.gethostname(),
                timeout=args.timeout,
                dry_run=args.dry_run,
            )
            idle = _Idle(args, api, shutdown)
            if interval is not None:
                return _run_forever(args, idle, prometheus, interval)
            outcomes, _ = idle.run(at or datetime.now(UTC))
    finally:
        prometheus.close()
        api.close()
    if args.output == "json":
        print(json.dumps({"workloads": [o.to_dict() for o in outcomes]}, indent=2))
    else:
        for outcome in outcomes:
            print(_line(outcome))
        print(f"{len(outcomes)} governed workload(s)")
    return 0


def _line(outcome: IdleOutcome) -> str:
    idle = "?" if outcome.idle_minutes is None else str(outcome.idle_minutes)
    return (
        f"{outcome.result:<9} {outcome.kind} {outcome.namespace}/{outcome.name}: idle {idle} "
        f"of {outcome.threshold_minutes} minutes (FinOpsPolicy {outcome.policy}, "
        f"{outcome.action}, replicas {outcome.replicas})"
    )


def _run_forever(
    args: argparse.Namespace, idle: _Idle, prometheus: PrometheusClient, interval: float
) -> int:
    from prometheus_client import start_http_server

    # Loaded only here: prometheus_client must not load before serve sets its multiprocess mode.
    from edgepolicy.finops_metrics import FinopsMetrics, budget_uses

    metrics = FinopsMetrics()
    try:
        server, thread = start_http_server(
            args.metrics_port, addr=args.metrics_host, registry=metrics.registry
        )
    except OSError as error:
        raise UsageError(f"--metrics-port {args.metrics_port}: {error.strerror}") from error
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    _log(f"every {interval:g}s, metrics on http://{args.metrics_host}:{args.metrics_port}/metrics")
    try:
        while not stop.is_set():
            begun = time.monotonic()
            at = datetime.now(UTC)
            try:
                outcomes, policies = idle.run(at)
                budgets = budget_uses(prometheus, policies, at=at)
            except EdgepolicyError as error:
                metrics.errors.labels(stage="run").inc()
                _log(f"run failed: {error}")
            else:
                metrics.completed(outcomes, budgets, started=at.timestamp())
                for outcome in outcomes:
                    if outcome.result in ("scaled", "alerted", "reported"):
                        _log(_line(outcome))
            stop.wait(max(0.0, interval - (time.monotonic() - begun)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
        thread.join(timeout=5)
    return 0


def _log(message: str) -> None:
    print(f"edgepolicy finops idle: {message}", file=sys.stderr, flush=True)
