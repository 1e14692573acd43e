"""Benchmark: `edgepolicy finops report` over a fleet's series in a real Prometheus.

Generates the exporters' series (kube-state-metrics, cAdvisor, dcgm-exporter: 8 series a pod)
of ``--pods`` pods in 10 namespaces, each with one FinOpsPolicy selecting its pods by label,
over ``--days`` days scraped every ``--scrape`` seconds; backfills them with promtool (both
cached under .cache/finops-bench/, so a second run starts at once); starts Prometheus on the
TSDB and measures, in this process:

- the baseline: pulling one metric's raw samples (every pod's CPU counter over the window) into
  Python, as a report that aggregated client-side would have to, for every metric;
- the report (``--window``, forecasts included): every policy measured through PromQL
  aggregation, then the JSON document built.

Prints time, peak Python memory (tracemalloc), this process's and Prometheus's peak resident
size; asserts nothing.

    .venv/bin/python bench/finops_report.py [--pods 1000] [--days 7] [--scrape 30] [--window 24h]

The contract's size (1,000 pods, 7 days at 30 s: 161 M samples, ~15 GB of OpenMetrics text)
takes far longer to generate and backfill than the report takes; see docs/finops-report.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import shutil
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

import yaml  # noqa: E402
from prometheus_support import PrometheusServer, backfill  # noqa: E402

from edgepolicy import cli  # noqa: E402
from edgepolicy.prometheus_api import PrometheusClient  # noqa: E402

NAMESPACES = 10
GIB = 2**30


def _series(
    out: io.TextIOBase, name: str, labels: str, stamps: list[str], values: Callable[[int], str]
) -> None:
    prefix = f"{name}{{{labels}}} "
    out.write("".join(f"{prefix}{values(i)} {stamp}\n" for i, stamp in enumerate(stamps)))


def generate(path: Path, pods: int, start: int, end: int, scrape: int) -> int:
    """Write the fleet's OpenMetrics text; return the number of samples."""
    times = list(range(start, end, scrape))
    stamps = [str(t) for t in times]
    per_day = 86400 // scrape
    running = [8 * 3600 <= (t - start) % 86400 < 20 * 3600 for t in times]
    names = [(f"team-{i % NAMESPACES}", f"pod-{i:05d}") for i in range(pods)]

    def ids(namespace: str, pod: str) -> str:
        return f'namespace="{namespace}",pod="{pod}"'

    with path.open("w") as out:
        for namespace, pod in names:
            _series(out, "kube_pod_labels", f'{ids(namespace, pod)},label_team="{namespace}"',
                    stamps, lambda i: "1")  # fmt: skip
        for resource_name, value in (
            ("nvidia_com_gpu", "1"),
            ("cpu", "2"),
            ("memory", str(4 * GIB)),
        ):
            for namespace, pod in names:
                labels = f'{ids(namespace, pod)},container="main",resource="{resource_name}"'
                _series(out, "kube_pod_container_resource_limits", labels, stamps,
                        lambda i, v=value: v)  # fmt: skip
        for namespace, pod in names:
            _series(out, "kube_pod_status_phase", f'{ids(namespace, pod)},phase="Running"',
                    stamps, lambda i: "1" if running[i] else "0")  # fmt: skip
        for n, (namespace, pod) in enumerate(names):
            rate = 0.5 + (n % 7) / 10
            labels = f'{ids(namespace, pod)},container="main"'
            _series(out, "container_cpu_usage_seconds_total", labels, stamps,
                    lambda i, r=rate: str(round(r * i * scrape, 3)))  # fmt: skip
        for n, (namespace, pod) in enumerate(names):
            base = (1 + n % 3) * GIB
            labels = f'{ids(namespace, pod)},container="main"'
            _series(out, "container_memory_working_set_bytes", labels, stamps,
                    lambda i, b=base: str(b + (i % per_day) * 1000))  # fmt: skip
        for namespace, pod in names:
            # Busy 70% while running, except every fifth hour (at 30 s scrapes): idle.
            _series(out, "DCGM_FI_DEV_GPU_UTIL", f'{ids(namespace, pod)},gpu="0"', stamps,
                    lambda i: "70" if running[i] and (i // 120) % 5 else "0")  # fmt: skip
        out.write("# EOF\n")
    return len(times) * pods * 8


def _policies(path: Path) -> None:
    documents = [
        {
            "apiVersion": "policy.apexlogic.com/v1alpha1",
            "kind": "FinOpsPolicy",
            "metadata": {"name": "fleet", "namespace": f"team-{i}"},
            "spec": {
                "targetWorkloadSelector": {"matchLabels": {"team": f"team-{i}"}},
                "costLimits": {"dailyGPUHours": 1000, "maxCPUCores": 200, "maxMemoryGB": 400},
                "optimizationRules": {"idleShutdownThresholdMinutes": 30},
            },
        }
        for i in range(NAMESPACES)
    ]
    path.write_text(yaml.safe_dump_all(documents))


def _measure(label: str, run: Callable[[], Any]) -> Any:
    tracemalloc.start()
    begun = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - begun
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label}: {seconds:.2f} s, peak Python memory {peak / 2**20:.1f} MiB", flush=True)
    return seconds, result


def _prometheus_peak_rss(server: PrometheusServer) -> str:
    process = getattr(server, "_process", None)
    if process is None:
        return "?"
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return line.split(":", 1)[1].strip()
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scrape", type=int, default=30)
    parser.add_argument("--window", default="24h")
    args = parser.parse_args()
    cache = ROOT / ".cache" / "finops-bench" / f"{args.pods}-pods-{args.days}d-{args.scrape}s"
    tsdb = cache / "tsdb"
    end = (cache / "end").read_text().strip() if (cache / "end").exists() else None
    if end is None:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        start = int(at.timestamp()) - args.days * 86400
        text = cache / "series.om.txt"
        begun = time.perf_counter()
        samples = generate(text, args.pods, start, int(at.timestamp()), args.scrape)
        generated = time.perf_counter() - begun
        size = text.stat().st_size
        print(f"generate: {samples:,} samples, {size / 2**30:.2f} GiB in {generated:.1f} s")
        print(f"backfill: {backfill(text, tsdb):.1f} s")
        text.unlink()
        end = at.isoformat()
        (cache / "end").write_text(end)
    else:
        print(f"using the cached TSDB {tsdb} (ends {end})")
    policies = cache / "policies.yaml"
    _policies(policies)
    at_time = datetime.fromisoformat(end)
    with PrometheusServer(tsdb, cache, rule_files=()) as server:
        client = PrometheusClient(server.url)
        window = args.window

        def raw() -> int:
            # Prometheus answers at most 11,000 points a series: one day at a time.
            left = int(cli_window_seconds(window))
            chunk_end, pulled = at_time, 0
            while left > 0:
                span = min(left, 86400)
                series = client.query_range(
                    "container_cpu_usage_seconds_total",
                    chunk_end - timedelta(seconds=span - args.scrape),
                    chunk_end,
                    args.scrape,
                )
                pulled += sum(len(s["values"]) for s in series)
                chunk_end -= timedelta(seconds=span)
                left -= span
            return pulled

        def report() -> dict[str, Any]:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = cli.main(
                    ["finops", "report", "--prometheus", server.url, "--policies",
                     str(policies), "--at", end, "--window", window, "-o", "json"]
                )  # fmt: skip
            if code != 0:
                raise SystemExit(f"report failed with {code}")
            document: dict[str, Any] = json.loads(out.getvalue())
            return document

        seconds, document = _measure(f"report: {args.pods} pods, window {window}", report)
        pods = sum(len(p["pods"]) for p in document["policies"])
        print(f"  {len(document['policies'])} policies, {pods} pods reported")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  this process peak resident after the report: {rss:.0f} MiB")
        baseline, pulled = _measure("baseline: raw CPU samples into Python", raw)
        print(f"  {pulled:,} samples pulled")

        print(f"  report / baseline: {seconds / baseline:.2f}")
        client.close()
        print(f"Prometheus peak resident: {_prometheus_peak_rss(server)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"this process peak resident: {peak:.0f} MiB")


def cli_window_seconds(text: str) -> float:
    from edgepolicy.cli.finops_report_command import parse_window

    return parse_window(text, "--window").total_seconds()


if __name__ == "__main__":
    main()
