"""The `edgepolicy serve` subcommand: the admission webhook over TLS, served by gunicorn.

With ``--opa-url`` the webhook asks that OPA (the sidecar fed by bundles). Without it, serve
starts and supervises a local OPA loaded with the shipped Rego library, the policy objects under
``--policies`` and the ``--data`` files, so one command runs everything on a laptop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgepolicy.cli.flag_errors import from_flag
from edgepolicy.errors import EdgepolicyError, UsageError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DESCRIPTION = """\
The validating (/validate) and mutating (/mutate) admission webhook over TLS, served by
gunicorn's evented workers (idle and slow connections hold no thread; handshake, header,
body and write timeouts). With --opa-url it asks that OPA (the sidecar fed by bundles);
without it, it starts and supervises a local OPA with the shipped Rego library, the policy
objects under --policies and the --data files. See docs/webhook.md."""
EXAMPLES = """\
Examples:
  edgepolicy serve --tls-cert tls.crt --tls-key tls.key --policies examples/policies/
  edgepolicy serve --tls-cert tls.crt --tls-key tls.key --opa-url http://127.0.0.1:8181
  edgepolicy serve --tls-cert tls.crt --tls-key tls.key --policies policies/ \\
      --data settings.yaml --kubeconfig ~/.kube/config --fail-open --timeout 2
  edgepolicy serve --tls-cert tls.crt --tls-key tls.key --opa-url http://127.0.0.1:8181 \\
      --handshake-timeout 2 --header-timeout 2 --body-timeout 2 --write-timeout 2 \\
      --max-connections 8192
"""


def add_parser(subparsers: Any) -> None:
    """Register `serve`."""
    parser = subparsers.add_parser(
        "serve",
        help="run the validating and mutating admission webhook over TLS",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tls-cert", required=True, metavar="FILE", help="PEM certificate chain")
    parser.add_argument("--tls-key", required=True, metavar="FILE", help="PEM private key")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8443, help="port to listen on (default 8443)")
    parser.add_argument(
        "--probe-port",
        type=int,
        metavar="PORT",
        help="also serve /healthz, /readyz and /metrics (only those) in plain HTTP on this port, "
        "never refused under overload: for the kubelet's probes and Prometheus (default: none)",
    )
    parser.add_argument(
        "--opa-url",
        metavar="URL",
        help="OPA to ask (e.g. http://127.0.0.1:8181, the sidecar); default: start a local OPA",
    )
    parser.add_argument(
        "--workers", type=int, default=2, metavar="N", help="gunicorn worker processes (default 2)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        metavar="N",
        help="decisions asked of OPA at once per worker (default 4); more requests wait, "
        "within their deadline, for a free slot",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        metavar="N",
        help="open connections per worker (default 4096); more wait in the listen backlog",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time a new connection has for its TLS handshake (default 5)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time a request has for its line and headers, from their first byte (default 5)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time a request has for its body, after its headers (default 5)",
    )
    parser.add_argument(
        "--write-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time an answer has to be sent; a client that does not read it is closed (default 5)",
    )
    parser.add_argument(
        "--fail-open",
        action="store_true",
        help="admit objects (with a warning) when no decision can be made in time; "
        "default: deny them (fail closed)",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="files or directories with FinOpsPolicy/ModelPolicy objects for the local OPA",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON/YAML data file for the local OPA (e.g. edgepolicy.settings); repeatable",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="deadline for answering one AdmissionReview (default 3; keep it below the "
        "webhook configuration's timeoutSeconds)",
    )
    parser.add_argument("--opa", metavar="PATH", help="OPA binary for the local OPA")
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig for reading FinOpsPolicies and HPA targets from the cluster; "
        "default: the in-cluster service account when running in a pod, else no lookups",
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        help="kubeconfig context to use (default: its current-context); without --kubeconfig, "
        "the files kubectl reads ($KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="gunicorn log level (default info)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")
    parser.set_defaults(func=_run)


def _check_args(args: argparse.Namespace) -> None:
    from edgepolicy.cli.tls_flags import check_tls_flags

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    if args.probe_port is not None and not 0 < args.probe_port < 65536:
        raise UsageError(f"--probe-port must be between 1 and 65535, got {args.probe_port}")
    if args.probe_port == args.port:
        raise UsageError(f"--probe-port must differ from --port (both {args.port})")
    for flag in ("workers", "threads", "max_connections"):
        if getattr(args, flag) < 1:
            raise UsageError(
                f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}"
            )
    for flag in ("handshake_timeout", "header_timeout", "body_timeout", "write_timeout"):
        if not getattr(args, flag) > 0:
            raise UsageError(
                f"--{flag.replace('_', '-')} must be more than 0, got {getattr(args, flag)}"
            )
    if args.opa_url and (args.policies or args.data or args.opa):
        raise UsageError(
            "--policies, --data and --opa configure the local OPA; with --opa-url the policies "
            "come from that OPA (its bundles)"
        )
    if args.kubeconfig is not None and not Path(args.kubeconfig).is_file():
        raise UsageError(f"--kubeconfig {args.kubeconfig}: no such file")
    check_tls_flags(Path(args.tls_cert), Path(args.tls_key))


def _run(args: argparse.Namespace) -> int:
    _check_args(args)
    metrics_dir = tempfile.mkdtemp(prefix="edgepolicy-metrics-")
    # prometheus_client picks its multiprocess mode when first imported: set it up before.
    os.environ[MULTIPROC_ENV] = metrics_dir
    owner = os.getpid()
    try:
        return _serve(args)
    finally:
        if os.getpid() == owner:  # gunicorn workers leave through here too
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)  # nothing outlives the server (a caller in-process)


def _serve(args: argparse.Namespace) -> int:
    from edgepolicy.cli.policy_options import opa_binary
    from edgepolicy.library import library_path
    from edgepolicy.opa_client import OpaClient
    from edgepolicy.server_tls import ReloadingContext
    from edgepolicy.webhook import lookups
    from edgepolicy.webhook.config import WebhookConfig
    from edgepolicy.webhook.gunicorn_server import ServerOptions, WebhookServer
    from edgepolicy.webhook.opa_supervisor import OpaSupervisor, local_data
    from edgepolicy.webhook.prefork import load_shared

    options = ServerOptions(
        cert_file=Path(args.tls_cert),
        key_file=Path(args.tls_key),
        host=args.host,
        port=args.port,
        workers=args.workers,
        handshake_seconds=args.handshake_timeout,
        header_seconds=args.header_timeout,
        body_seconds=args.body_timeout,
        write_seconds=args.write_timeout,
        max_connections=args.max_connections,
        probe_port=args.probe_port,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    tls = ReloadingContext(options.cert_file, options.key_file)
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    try:  # fail now, not in every worker, on unusable credentials
        lookups.connect(kubeconfig, context=args.context, authenticate=True)
    except EdgepolicyError as error:
        flags = " ".join(
            f for f, v in (("--kubeconfig", kubeconfig), ("--context", args.context)) if v
        )
        raise UsageError(f"{flags}: {error}" if flags else str(error)) from error
    local_opa: OpaSupervisor | None = None
    opa_url: str = args.opa_url or ""
    if not opa_url:
        local_opa = OpaSupervisor(
            opa_binary(args),
            paths=[library_path()],
            data=local_data([Path(path) for path in args.policies], [Path(d) for d in args.data]),
        )
        opa_url = local_opa.url
    with from_flag("--timeout"):
        config = WebhookConfig(
            opa_url=opa_url,
            timeout=args.timeout,
            fail_open=args.fail_open,
            kubeconfig=kubeconfig,
            kube_context=args.context,
            bundles=local_opa is None,
            concurrent_decisions=args.threads,
        )
    OpaClient(opa_url).close()  # a malformed URL fails here, not in every worker
    # gunicorn's master imports what its workers share (patched for gevent first), before the
    # local OPA starts: a greenlet watchdog could not run during these imports.
    load_shared()
    if local_opa is not None:
        local_opa.start()
    try:
        mode = "fail open" if args.fail_open else "fail closed"
        print(
            f"edgepolicy serve: {options.url} (/validate, /mutate), "
            f"OPA {opa_url}{' (local)' if local_opa else ''}, {mode}, deadline {args.timeout:g}s",
            file=sys.stderr,
            flush=True,
        )
        WebhookServer(options, tls, config).run()
    finally:
        if local_opa is not None:
            local_opa.stop()
    return 0
