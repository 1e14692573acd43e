"""Soak the webhook: half its capacity for 30 minutes, the resident memory of every gunicorn
process and of OPA sampled throughout; prints the growth after warm-up and the errors.

Not a test: it prints numbers (see docs/performance.md). Run it niced on a shared machine:

    nice -n 10 .venv/bin/python bench/soak.py [--minutes 30] [--warm-up 2] [--rate N]
                                              [--share 0.5] [--sample 10] [--json FILE]

Capacity is measured first as in bench/admission_limits.py (vegeta in a closed loop with 16
requests outstanding, correct answers per second) unless ``--rate`` is given; then vegeta runs
at ``--share`` of it with the bench/admission.py mix over TLS and keep-alive. An error is any
request not answered with the decision the unloaded webhook gives it (transport error, HTTP
error, failure-mode answer); the new connections the webhook reset are counted too.
vegeta keeps to ``--connections`` connections, as the API server keeps a bounded pool: a worker's
memory grows with its open connections (about 30 kB each, TLS buffers included), and an
unbounded load generator opens hundreds more whenever the shared machine stalls for a moment,
which a soak would then report as growth.
Growth compares the median of the last minute's samples with the median of the first minute's
after ``--warm-up`` minutes, per process and in total (medians: OPA's Go heap rises and falls
with each garbage collection). A worker that was replaced (a new pid) is reported: that is
a failure of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from admission import VEGETA, _children
from admission_limits import bench_servers, refused_connections, vegeta

# Capacity is measured in a closed loop with this many requests outstanding (where the webhook
# does best in bench/admission_limits.py; thousands would leave their connections' memory behind).
CAPACITY_CONNECTIONS = 16


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def _open_files(pid: int) -> int:
    """Open file descriptors of ``pid`` (a worker's connections and a few more)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak and print the samples, the growth and the errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak")
    parser.add_argument("--warm-up", type=float, default=2.0, help="minutes before the baseline")
    parser.add_argument("--rate", type=int, help="req/s (default: --share of the capacity)")
    parser.add_argument("--share", type=float, default=0.5, help="share of capacity (0.5)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="serve --threads")
    parser.add_argument(
        "--connections", type=int, default=64, help="vegeta's connections at most (64)"
    )
    parser.add_argument("--json", type=Path, help="also write the samples to this file")
    args = parser.parse_args(argv)
    if not VEGETA.is_file():
        print("vegeta not found: run scripts/install-tools.sh vegeta", file=sys.stderr)
        return 2
    samples: list[tuple[float, dict[str, float]]] = []
    with bench_servers(
        workers=args.workers, threads=args.threads, prefix="edgepolicy-soak-"
    ) as bench:
        ca, process, opa = bench.ca, bench.process, bench.opa
        targets, judge = bench.targets, bench.judge
        rate = args.rate
        if rate is None:
            capacity = vegeta(
                targets,
                label="capacity",
                rate=0,
                duration=10,
                ca=ca,
                is_correct=judge,
                connections=CAPACITY_CONNECTIONS,
            )
            rate = max(1, round(capacity.goodput * args.share))
            print(f"capacity {capacity.goodput:.0f} correct answers/s; soak at {rate}/s")
        assert opa.pid is not None
        watched = {"master": process.pid, "opa": opa.pid}
        watched |= {f"worker {pid}": pid for pid in _children(process.pid)}
        reset_before = refused_connections(bench.metrics_url)
        started = time.monotonic()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                sizes = {name: rss_mb(pid) for name, pid in watched.items()}
                for pid in _children(process.pid):
                    if f"worker {pid}" not in watched:
                        print(f"  a new worker appeared: pid {pid} (one was replaced)")
                        watched[f"worker {pid}"] = pid
                samples.append((time.monotonic() - started, sizes))
                minute = samples[-1][0] / 60
                shown = "  ".join(f"{name} {size:.1f}" for name, size in sizes.items())
                files = sum(_open_files(pid) for pid in _children(process.pid))
                print(f"  {minute:6.1f} min  RSS MB: {shown}  (open files {files})", flush=True)
                done.wait(args.sample)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run = vegeta(
            targets,
            label="soak",
            rate=rate,
            duration=args.minutes * 60,
            ca=ca,
            is_correct=judge,
            connections=args.connections,
        )
        done.set()
        sampler.join()
        resets = refused_connections(bench.metrics_url) - reset_before

    warm = [sizes for at, sizes in samples if at >= args.warm_up * 60]
    print(
        f"\nsoak {args.minutes:g} min at {rate}/s: sent {run.sent}, answered {run.answered}, "
        f"errors {run.sent - run.correct} (target 0; {resets} new connections reset), "
        f"p99 {run.p99_ms:.1f} ms, max {run.max_ms:.1f} ms"
    )
    if len(warm) >= 2:
        window = max(1, min(len(warm) // 2, round(60 / args.sample)))
        first = {name: statistics.median(s[name] for s in warm[:window]) for name in warm[0]}
        last = {name: statistics.median(s.get(name, 0.0) for s in warm[-window:]) for name in first}
        print(f"RSS growth after the {args.warm_up:g} min warm-up (target < 10%):")
        for name in first:
            growth = (last[name] - first[name]) / first[name] * 100 if first[name] else 0.0
            print(f"  {name:<14} {first[name]:7.1f} -> {last[name]:7.1f} MB  {growth:+.1f}%")
        total_first, total_last = sum(first.values()), sum(last.values())
        print(
            f"  {'total':<14} {total_first:7.1f} -> {total_last:7.1f} MB  "
            f"{(total_last - total_first) / total_first * 100:+.1f}%"
        )
    if args.json:
        args.json.write_text(json.dumps({"rate": rate, "samples": samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
