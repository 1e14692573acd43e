"""Split the webhook workers' CPU per admission: the HTTP/TLS server, the webhook's own work,
the round trip to OPA. Three servers in one run, each driven by vegeta with the same mix:

- ``webhook + OPA``: ``edgepolicy serve`` in front of a real OPA (as shipped);
- ``webhook, decision canned``: the same, but every decision is a fixed "allowed" returned
  without asking OPA (patched in at start; the answers are then not the policy's, only their
  cost is of interest);
- ``null app``: gunicorn's stock gevent worker with TLS serving a WSGI application that reads the
  body and answers 100 bytes: what the HTTP/TLS server alone costs.

The differences give the round trip to OPA (first minus second) and the webhook's own work
beyond the server (second minus third). A request costs more CPU at a low rate than at a high
one (each then runs alone, its code and data evicted by the other processes since the last
one), so every server is measured at each rate.

Not a test: it prints numbers (see docs/performance.md).

    .venv/bin/python bench/webhook_cpu_split.py [--rates 200,1000,0] [--duration 5]

A rate of 0 is a closed loop with 8 outstanding requests. Needs the pinned OPA and vegeta.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import urllib3
from admission import (
    EXAMPLES,
    SETTINGS,
    VEGETA,
    _children,
    _free_port,
    _write_tls,
    cpu_seconds,
    request_mix,
    wait_until_serving,
    webhook_server,
    write_targets,
)
from admission_limits import vegeta
from edgepolicy.webhook.opa_supervisor import local_data

from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.opa_process import OpaProcess

CLOSED_LOOP_CONNECTIONS = 8
# `python -c` program: serve with every decision a fixed "allowed" (gevent first, as serve does).
CANNED_SERVE = """
import sys
from edgepolicy.webhook.prefork import patch_standard_library
patch_standard_library()
from edgepolicy.decision import Decision
from edgepolicy.opa_client import OpaClient
ALLOWED = Decision.from_document({"allowed": True})
OpaClient.decide = lambda self, input_doc: ALLOWED
from edgepolicy.cli import main
sys.exit(main())
"""
NULL_APP = """
ANSWER = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",' \\
    b'"response":{"allowed":true}}'


def application(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(ANSWER)))])
    return [ANSWER]
"""


@contextmanager
def null_server(directory: Path, *, workers: int) -> Iterator[tuple[str, Path, int]]:
    """gunicorn's gevent worker with TLS and the null application; yields (URL, CA, pid)."""
    ca, cert, key = _write_tls(directory)
    (directory / "null_app.py").write_text(NULL_APP)
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--chdir", str(directory), "-k", "gevent",
            "-w", str(workers), "--certfile", str(cert), "--keyfile", str(key),
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", "null_app:application",
        ],
        stderr=subprocess.DEVNULL,  # gevent prints every client that leaves mid-handshake
        start_new_session=True,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    client = urllib3.PoolManager(ca_certs=str(ca), retries=False)
    try:
        wait_until_serving(
            process,
            lambda: client.request("POST", url, body=b"{}", timeout=1.0).status == 200,
            "gunicorn with the null application did not start",
            30,
        )
        yield url, ca, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def measure(
    label: str,
    targets: Path,
    ca: Path,
    workers: Sequence[int],
    rates: Sequence[int],
    seconds: float,
) -> dict[int, float]:
    """The workers' CPU milliseconds per answered request at each rate (printed too)."""
    costs = {}
    for rate in rates:
        before = cpu_seconds(workers)
        run = vegeta(
            targets,
            label=label,
            rate=rate,
            duration=seconds,
            ca=ca,
            is_correct=lambda _url, _body: True,
            connections=CLOSED_LOOP_CONNECTIONS if rate == 0 else 5000,
        )
        costs[rate] = (cpu_seconds(workers) - before) * 1000 / max(run.answered, 1)
        shown = f"{rate}/s" if rate else f"closed x{CLOSED_LOOP_CONNECTIONS}"
        print(
            f"  {label:<26} {shown:>10}  {run.answered / run.seconds:7.0f} answers/s  "
            f"p50 {run.p50_ms:6.2f}  p99 {run.p99_ms:7.2f} ms  workers {costs[rate]:.3f} ms CPU "
            f"per answer",
            flush=True,
        )
    return costs


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the three servers at each rate and print the split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,300,0", help="req/s, comma-separated; 0: closed")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args(argv)
    if not VEGETA.is_file():
        print("vegeta not found: run scripts/install-tools.sh vegeta", file=sys.stderr)
        return 2
    rates = [int(rate) for rate in args.rates.split(",")]
    data = local_data([EXAMPLES / "policies"], [])
    data["edgepolicy"].update(SETTINGS["edgepolicy"])
    mix = request_mix()
    results: dict[str, dict[int, float]] = {}
    serve_variants: list[tuple[str, Sequence[str]]] = [
        ("webhook + OPA", (str(Path(sys.executable).parent / "edgepolicy"),)),
        ("webhook, decision canned", (sys.executable, "-c", CANNED_SERVE)),
    ]
    with (
        tempfile.TemporaryDirectory(prefix="edgepolicy-split-") as tmp,
        OpaProcess(find_opa(), paths=[library_path()], data=data) as opa,
    ):
        print(f"{args.workers} workers; vegeta with the admission mix; CPU of the workers only")
        for label, launcher in serve_variants:
            directory = Path(tmp) / label.split()[-1]
            directory.mkdir()
            with webhook_server(
                directory, opa.url, workers=args.workers, threads=4, launcher=launcher
            ) as (url, ca, process):
                targets = directory / "targets.json"
                write_targets(targets, mix, webhook=url, opa=opa.url)
                _warm(targets, ca)
                results[label] = measure(
                    label, targets, ca, _children(process.pid), rates, args.duration
                )
        directory = Path(tmp) / "null"
        directory.mkdir()
        with null_server(directory, workers=args.workers) as (url, ca, pid):
            targets = directory / "targets.json"
            write_targets(targets, mix, webhook=url, opa=opa.url)
            _warm(targets, ca)
            results["null app"] = measure(
                "null app", targets, ca, _children(pid), rates, args.duration
            )
    print("\nsplit of the workers' CPU per admission (ms):")
    for rate in rates:
        real, canned, null = (results[label][rate] for label in results)
        shown = f"{rate}/s" if rate else f"closed x{CLOSED_LOOP_CONNECTIONS}"
        print(
            f"  {shown:>10}: HTTP/TLS server {null:.3f} + webhook's own {canned - null:.3f} "
            f"+ round trip to OPA {real - canned:.3f} = {real:.3f}"
        )
    return 0


def _warm(targets: Path, ca: Path) -> None:
    vegeta(targets, label="warm-up", rate=100, duration=2, ca=ca, is_correct=lambda _u, _b: True)


if __name__ == "__main__":
    sys.exit(main())
