"""Benchmark the admission webhook: vegeta at fixed rates against /validate and /mutate over TLS,
the same mix against the OPA it stands on, and the workers' resident memory.

Not a test: it prints numbers (see docs/performance.md for what was measured and the targets).

    .venv/bin/python bench/admission.py [--rates 100,200,300,1000] [--duration 10]
                                        [--workers 2] [--threads 4] [--json FILE]
                                        [--in-process N]

``--in-process N`` also measures the CPU the Python path itself spends per admission (the WSGI
application called directly with the same mix, N requests, against the same OPA; no TLS, no
gunicorn), which a busy machine disturbs far less than latencies.

Needs the pinned OPA and vegeta (`scripts/install-tools.sh opa vegeta`). Everything listens on
127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import urllib3
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from edgepolicy.webhook.opa_supervisor import local_data

from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.opa_process import OpaProcess

ROOT = Path(__file__).resolve().parent.parent
VEGETA = ROOT / ".tools" / "bin" / "vegeta"
EDGEPOLICY = Path(sys.executable).parent / "edgepolicy"
EXAMPLES = ROOT / "examples"
# Roll-out mode for the mix's "warned" request: replicas beyond the budget only warn.
SETTINGS = {"edgepolicy": {"settings": {"enforcementActions": {"finops.replicas": "warn"}}}}
DECISION_PATH = "/v1/data/edgepolicy/admission/decision"


# ---- the request mix ---------------------------------------------------------------------------


def _example(name: str) -> dict[str, Any]:
    """The first object of examples/workloads/<name>."""
    with open(EXAMPLES / "workloads" / name, encoding="utf-8") as handle:
        return next(doc for doc in yaml.safe_load_all(handle) if doc)


def _training_deployment(name: str, *, replicas: int, containers: int) -> dict[str, Any]:
    """A fine-tuning Deployment under model-training-cost-policy; ``containers`` sets its size."""
    env = [{"name": f"SETTING_{i}", "value": "x" * 64} for i in range(20)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ai-workloads",
            "labels": {"app": "model-training", "env": "staging-edge"},
            "annotations": {"description": "y" * 512},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "model-training"}},
            "template": {
                "metadata": {"labels": {"app": "model-training", "env": "staging-edge"}},
                "spec": {
                    "containers": [
                        {
                            "name": f"worker-{i}",
                            "image": "registry.example.com/ai/trainer:2.3.1",
                            "args": ["--epochs=3", "--batch-size=16", "--precision=bf16"],
                            "env": copy.deepcopy(env),
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"cpu": "100m", "memory": "128Mi"},
                            },
                        }
                        for i in range(containers)
                    ]
                },
            },
        },
    }


@dataclass(frozen=True)
class MixItem:
    """One kind of request in the mix: which endpoint, which object, how often (of 20)."""

    label: str
    endpoint: str
    review: dict[str, Any]
    weight: int


def request_mix(*, large: bool = True) -> list[MixItem]:
    """The realistic mix: allowed, denied and warned workloads, small and large, both endpoints
    (without the large object when ``large`` is false, to show what it costs)."""
    allowed = admission_review(_example("allowed-training-job.yaml"))
    denied = admission_review(_example("denied-cpu.yaml"))
    warned = admission_review(_training_deployment("tuner", replicas=3, containers=1))
    big = admission_review(_training_deployment("sweep", replicas=2, containers=30))
    mix = [
        MixItem("allowed small (Job)", "validate", allowed, 6),
        MixItem("denied (Deployment, cpu + quantization)", "validate", denied, 4),
        MixItem("warned (Deployment, replicas)", "validate", warned, 3),
        MixItem("allowed large (30 containers)", "validate", big, 2),
        MixItem("mutate small (Job)", "mutate", allowed, 3),
        MixItem("mutate warned (Deployment)", "mutate", warned, 2),
    ]
    return [item for item in mix if large or item.review is not big]


def _target(url: str, body: bytes) -> str:
    return json.dumps(
        {
            "method": "POST",
            "url": url,
            "body": base64.b64encode(body).decode(),
            "header": {"Content-Type": ["application/json"]},
        }
    )


def write_targets(path: Path, mix: Sequence[MixItem], *, webhook: str, opa: str) -> Path:
    """Write vegeta JSON targets, each item repeated by its weight; returns the OPA targets."""
    webhook_lines, opa_lines = [], []
    for item in mix:
        for _ in range(item.weight):
            webhook_lines.append(
                _target(f"{webhook}/{item.endpoint}", json.dumps(item.review).encode())
            )
            opa_body = json.dumps({"input": decision_input(item.review)}).encode()
            opa_lines.append(_target(f"{opa}{DECISION_PATH}", opa_body))
    path.write_text("\n".join(webhook_lines) + "\n")
    opa_path = path.with_name("opa-" + path.name)
    opa_path.write_text("\n".join(opa_lines) + "\n")
    return opa_path


# ---- processes ---------------------------------------------------------------------------------


def _write_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1: returns (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgepolicy bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = (directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def webhook_server(
    directory: Path,
    opa_url: str,
    *,
    workers: int,
    threads: int,
    probe_port: int | None = None,
    launcher: Sequence[str] = (str(EDGEPOLICY),),
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """Run `edgepolicy serve` (``launcher`` then ``serve``) against ``opa_url`` (with
    ``--probe-port``, when given); yields (base URL, CA file, process)."""
    ca, cert, key = _write_tls(directory)
    port = _free_port()
    log = open(directory / "serve.log", "wb")  # noqa: SIM115 - closed below
    probes = [] if probe_port is None else ["--probe-port", str(probe_port)]
    process = subprocess.Popen(
        [
            *launcher, "serve", "--tls-cert", str(cert), "--tls-key", str(key),
            "--host", "127.0.0.1", "--port", str(port), "--opa-url", opa_url,
            "--workers", str(workers), "--threads", str(threads), "--log-level", "warning",
            *probes,
        ],
        stdout=subprocess.DEVNULL,  # the decision lines: one per request
        stderr=log,
        start_new_session=True,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    client = urllib3.PoolManager(ca_certs=str(ca), retries=False)
    try:
        wait_until_serving(
            process,
            lambda: client.request("GET", url + "/readyz", timeout=1.0).status == 200,
            f"edgepolicy serve did not start: see {directory}/serve.log",
            60,
        )
        yield url, ca, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()


def wait_until_serving(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], failure: str, seconds: float
) -> None:
    """Wait until ``ready()`` is true (an HTTP error counts as not yet); exit with ``failure``
    when ``process`` ends or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(failure)
        try:
            if ready():
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory (MB) of each gunicorn worker of ``master_pid``."""
    sizes = []
    for child in _children(master_pid):
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sorted(sizes)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU seconds the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


# ---- vegeta ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One vegeta run at a fixed rate."""

    target: str
    rate: int
    achieved: float
    throughput: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int
    status_codes: dict[str, int]
    cpu_ms_per_request: float = 0.0


def attack(targets: Path, *, rate: int, duration: float, ca: Path | None, label: str) -> Result:
    """Run vegeta at ``rate`` requests/s for ``duration`` seconds, keep-alive, and report."""
    command = [
        str(VEGETA), "attack", "-format=json", f"-targets={targets}", f"-rate={rate}/s",
        f"-duration={duration}s", "-keepalive=true", "-http2=false", "-timeout=10s",
        "-workers=16", "-max-workers=512",
    ]  # fmt: skip
    if ca is not None:
        command.append(f"-root-certs={ca}")
    attack_run = subprocess.run(command, capture_output=True, check=True)
    report = subprocess.run(
        [str(VEGETA), "report", "-type=json"],
        input=attack_run.stdout,
        capture_output=True,
        check=True,
    )
    metrics = json.loads(report.stdout)
    latencies = metrics["latencies"]
    codes = {str(code): int(count) for code, count in (metrics.get("status_codes") or {}).items()}
    ok = codes.get("200", 0)
    return Result(
        target=label,
        rate=rate,
        achieved=round(metrics["rate"], 1),
        throughput=round(metrics["throughput"], 1),
        p50_ms=round(latencies["50th"] / 1e6, 2),
        p99_ms=round(latencies["99th"] / 1e6, 2),
        max_ms=round(latencies["max"] / 1e6, 2),
        requests=int(metrics["requests"]),
        errors=int(metrics["requests"]) - ok,
        status_codes=codes,
    )


def measured(
    targets: Path, *, rate: int, duration: float, ca: Path | None, label: str, pids: Sequence[int]
) -> Result:
    """:func:`attack`, plus the CPU time ``pids`` spent per request meanwhile."""
    before = cpu_seconds(pids)
    result = attack(targets, rate=rate, duration=duration, ca=ca, label=label)
    spent = (cpu_seconds(pids) - before) * 1000 / max(result.requests, 1)
    return replace(result, cpu_ms_per_request=round(spent, 2))


def python_path_cpu_ms(mix: Sequence[MixItem], opa_url: str, requests: int) -> float:
    """CPU milliseconds the webhook's Python path (views, admission service, OPA client, decision
    log, metrics) spends per admission, called in-process without TLS or gunicorn."""
    import io
    import logging

    from edgepolicy.webhook.app import create_app
    from edgepolicy.webhook.config import WebhookConfig
    from edgepolicy.webhook.decision_log import LOGGER_NAME

    app = create_app(WebhookConfig(opa_url=opa_url))
    logging.getLogger(LOGGER_NAME).disabled = True  # one line per request: not what is measured
    bodies = [
        (f"/{item.endpoint}", json.dumps(item.review).encode())
        for item in mix
        for _ in range(item.weight)
    ]

    def run(count: int) -> None:
        for index in range(count):
            path, body = bodies[index % len(bodies)]
            environ = {
                "REQUEST_METHOD": "POST",
                "SCRIPT_NAME": "",
                "PATH_INFO": path,
                "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8443",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "https",
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
            }
            for _ in app(environ, lambda status, headers: None):
                pass

    run(min(requests, 200))  # warm-up
    started = time.process_time()
    run(requests)
    return (time.process_time() - started) * 1000 / requests


def _print(result: Result) -> None:
    print(
        f"{result.target:<8} {result.rate:>5}/s  achieved {result.achieved:>7.1f}/s  "
        f"ok/s {result.throughput:>7.1f}  p50 {result.p50_ms:>7.2f} ms  "
        f"p99 {result.p99_ms:>8.2f} ms  max {result.max_ms:>8.2f} ms  "
        f"errors {result.errors}/{result.requests}  cpu {result.cpu_ms_per_request:.2f} ms/req",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one line per target and rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,300,1000", help="comma-separated req/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=4, help="serve --threads: decisions at once per worker"
    )
    parser.add_argument(
        "--no-large", action="store_true", help="leave the large (30-container) object out"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="N",
        help="also measure the Python path's CPU per admission in-process over N requests",
    )
    args = parser.parse_args(argv)
    if not VEGETA.is_file():
        print("vegeta not found: run scripts/install-tools.sh vegeta", file=sys.stderr)
        return 2
    rates = [int(rate) for rate in args.rates.split(",")]
    mix = request_mix(large=not args.no_large)
    print(f"mix (of {sum(item.weight for item in mix)}):")
    for item in mix:
        size = len(json.dumps(item.review))
        print(f"  {item.weight:>2} x /{item.endpoint:<8} {item.label} ({size} bytes)")
    print(f"gunicorn: {args.workers} gevent workers, --threads {args.threads}, TLS, keep-alive")
    results: list[Result] = []
    rss: dict[str, list[float]] = {}
    data = local_data([EXAMPLES / "policies"], [])
    data["edgepolicy"].update(SETTINGS["edgepolicy"])
    with (
        tempfile.TemporaryDirectory(prefix="edgepolicy-bench-") as tmp,
        OpaProcess(find_opa(), paths=[library_path()], data=data) as opa,
    ):
        directory = Path(tmp)
        with webhook_server(directory, opa.url, workers=args.workers, threads=args.threads) as (
            url,
            ca,
            process,
        ):
            targets = directory / "targets.json"
            opa_targets = write_targets(targets, mix, webhook=url, opa=opa.url)
            attack(targets, rate=50, duration=2, ca=ca, label="warm-up")
            rss["idle (after warm-up)"] = worker_rss_mb(process.pid)
            workers = _children(process.pid)
            assert opa.pid is not None
            for rate in rates:
                common = {"rate": rate, "duration": args.duration}
                webhook_run = measured(
                    targets, ca=ca, label="webhook", pids=workers, **common
                )  # the workers' own CPU: TLS, HTTP, Flask, JSON, OPA client
                _print(webhook_run)
                rss[f"after {rate}/s"] = worker_rss_mb(process.pid)
                opa_run = measured(opa_targets, ca=None, label="opa", pids=[opa.pid], **common)
                _print(opa_run)
                results += [webhook_run, opa_run]
        if args.in_process:
            python_cpu = python_path_cpu_ms(mix, opa.url, args.in_process)
            print(f"python path in-process: {python_cpu:.3f} ms CPU per admission", flush=True)
    print("webhook worker RSS (MB):")
    for moment, sizes in rss.items():
        print(f"  {moment:<22} " + ", ".join(f"{size:.1f}" for size in sizes))
    if args.json:
        args.json.write_text(
            json.dumps({"results": [asdict(r) for r in results], "rss_mb": rss}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
