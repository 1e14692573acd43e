"""Benchmark the webhook's limits against OPA direct, all ratios taken in one run: capacity,
p99 at 200/s, overload at 2x and 5x capacity (p99.9 of answered latency, goodput), and normal
requests' p99 while 1,000 stalled connections (partial TLS hello, slow headers, slow body) are
held open.

Not a test: it prints numbers (see docs/performance.md for what was measured and the targets).

    .venv/bin/python bench/admission_limits.py [--duration 5] [--stalled 1000]
                                               [--workers 2] [--threads 4] [--json FILE]

- capacity: vegeta in a closed loop (``-rate=0``) for ``--duration`` seconds at each of 8, 16,
  32 and 64 outstanding requests; capacity is the most correct answers per second of those runs
  (for the webhook: the decision each request gets unloaded, not a failure-mode answer; for OPA:
  HTTP 200 with a result); the CPU the servers (gunicorn master and workers, OPA) and vegeta
  spend per correct answer is printed too, with the capacity it would give on idle cores: on a
  machine shared with other work the measured capacities follow the other work more than the
  code;
- p99 at 200/s: the webhook, then OPA direct, ``--pairs`` times in turn; the ratio of each
  pair and their median (one 5-second run has only ten requests above its p99, and the other
  work on a shared machine moves them by a factor of two from one run to the next);
- overload: vegeta at fixed rates of 2x and 5x the webhook's capacity (open model);
  p99.9 of the latency of every answered request, goodput = correct decisions per second, and
  how many requests got no answer because the webhook reset their new connection (an
  overloaded worker does; the API server then applies the failure policy at once); and, since
  vegeta runs on the same cores, the cores it used and the most goodput the rest would allow
  were refusing the excess free for the servers (the servers' CPU per correct answer at
  capacity), beside the goodput per core the servers got (against capacity's);
- stalled connections: the p99 of vegeta at ``--probe-rate`` without, then with ``--stalled``
  connections held open by a separate process, then without again (the ratio is taken against
  the mean of the two unloaded p99s) (a third each: the first 3 bytes of a TLS
  hello; TLS done, then a header byte every 2 s; headers done, then a body byte every 2 s),
  opened evenly over 5 s and each reopened as soon as the webhook closes it.

Needs the pinned OPA and vegeta (`scripts/install-tools.sh opa vegeta`). Everything listens on
127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import multiprocessing
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import urllib3
from admission import (
    EXAMPLES,
    SETTINGS,
    VEGETA,
    _children,
    _free_port,
    cpu_seconds,
    request_mix,
    webhook_server,
    write_targets,
)
from edgepolicy.webhook.opa_supervisor import local_data

from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.opa_process import OpaProcess

DEADLINE_SECONDS = 3.0  # serve's default --timeout
CLOSED_SERIES = "edgepolicy_webhook_listener_closed_seconds_total"
# Capacity is the most correct answers per second over these closed-loop concurrencies.
CLOSED_LOOP_CONNECTIONS = (8, 16, 32, 64)
SPREAD_SECONDS = 5.0  # stalled connections are opened over this time (serve's timeouts: 5 s)


@dataclass(frozen=True)
class Run:
    """One vegeta run: what was offered and what came back."""

    label: str
    rate: int  # 0: closed loop
    seconds: float
    sent: int
    answered: int
    correct: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    cpu_ms: float = 0.0  # CPU of the servers and of vegeta per correct answer
    peak_connections: int = 0  # connections open to the server at once, at most (sampled)
    server_cores: float = 0.0  # the servers' CPU seconds per second of the run
    client_cores: float = 0.0  # vegeta's

    @property
    def cpu_capacity(self) -> float:
        """Correct answers per second the machine's cores would give at this CPU cost."""
        return (os.cpu_count() or 1) * 1000 / self.cpu_ms if self.cpu_ms else float("nan")

    @property
    def goodput(self) -> float:
        """Correct answers per second (over the time from the first request to the last
        answer)."""
        return self.correct / self.seconds

    @property
    def per_server_core(self) -> float:
        """Correct answers per second of the servers' CPU."""
        return self.correct / (self.server_cores * self.seconds) if self.server_cores else 0.0


def goodput_ceiling(overload: Run, capacity: Run) -> float:
    """The most goodput (as a share of ``capacity``'s) that the cores vegeta leaves at the
    ``overload`` rate allow, were refusing the excess free for the servers: the cores not used
    by vegeta, at the servers' CPU per correct answer at capacity (at most 1)."""
    free = (os.cpu_count() or 1) - overload.client_cores
    return min(1.0, free / capacity.server_cores) if capacity.server_cores else float("nan")


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(share * len(sorted_values)))
    return sorted_values[index]


def vegeta(
    targets: Path,
    *,
    label: str,
    rate: int,
    duration: float,
    ca: Path | None,
    is_correct: Any,
    pids: Sequence[int] = (),
    connections: int = 5000,
    port: int | None = None,
) -> Run:
    """Run vegeta (``rate`` 0: closed loop) and judge every answer with ``is_correct``; the CPU
    of ``pids`` (the servers) and of vegeta is counted per correct answer. At a fixed rate
    vegeta opens up to ``connections`` connections (more when answers are slow); with ``port``,
    the connections open to it are sampled every 0.2 s (the most at once is reported). In a
    closed loop vegeta keeps ``connections`` requests outstanding."""
    command = [
        str(VEGETA), "attack", "-format=json", f"-targets={targets}", f"-duration={duration}s",
        "-keepalive=true", "-http2=false", "-timeout=10s",
    ]  # fmt: skip
    if rate:
        command += [f"-rate={rate}/s", f"-workers={min(64, connections)}"]
        command += [f"-max-workers={connections}"]
    else:
        command += ["-rate=0", f"-workers={connections}", f"-max-workers={connections}"]
    if ca is not None:
        command.append(f"-root-certs={ca}")
    servers_before, client_before = cpu_seconds(pids), _children_cpu()
    with _connection_sampler(port) as peak:
        attacked = subprocess.run(command, capture_output=True, check=True)
    server_cpu = cpu_seconds(pids) - servers_before
    client_cpu = _children_cpu() - client_before
    cpu = server_cpu + client_cpu
    encoded = subprocess.run(
        [str(VEGETA), "encode", "--to", "json"],
        input=attacked.stdout,
        capture_output=True,
        check=True,
    )
    latencies: list[float] = []
    sent = correct = 0
    first_sent, last_answer = float("inf"), float("-inf")
    for line in encoded.stdout.splitlines():
        result = json.loads(line)
        sent += 1
        sent_at = _seconds(result["timestamp"])
        first_sent = min(first_sent, sent_at)
        if not result.get("code"):
            continue  # no answer (client timeout, connection refused)
        last_answer = max(last_answer, sent_at + result["latency"] / 1e9)
        latencies.append(result["latency"] / 1e6)
        body = base64.b64decode(result.get("body") or "")
        if result["code"] == 200 and is_correct(result.get("url", ""), body):
            correct += 1
    latencies.sort()
    seconds = max(duration, last_answer - first_sent)  # answers may come after the end
    return Run(
        label=label,
        rate=rate,
        seconds=seconds,
        sent=sent,
        answered=len(latencies),
        correct=correct,
        p50_ms=round(_percentile(latencies, 0.5), 2),
        p99_ms=round(_percentile(latencies, 0.99), 2),
        p999_ms=round(_percentile(latencies, 0.999), 2),
        max_ms=round(latencies[-1] if latencies else float("nan"), 2),
        cpu_ms=round(cpu * 1000 / correct, 3) if correct else 0.0,
        peak_connections=max(peak, default=0),
        server_cores=round(server_cpu / seconds, 3),
        client_cores=round(client_cpu / seconds, 3),
    )


def established_connections(port: int) -> int:
    """Connections established to local ``port`` (IPv4, Linux /proc)."""
    local = f":{port:04X} "
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split(None, 4)
        if fields[1].endswith(local.rstrip()) and fields[3] == "01":
            count += 1
    return count


@contextmanager
def _connection_sampler(port: int | None) -> Iterator[list[int]]:
    """Sample the connections established to ``port`` every 0.2 s while the block runs."""
    samples: list[int] = []
    if port is None:
        yield samples
        return
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append(established_connections(port))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join()


def _seconds(timestamp: str) -> float:
    """Seconds since the epoch of a vegeta timestamp (RFC 3339 with nanoseconds, UTC)."""
    whole, _, fraction = timestamp.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _show(run: Run) -> None:
    rate = f"{run.rate}/s" if run.rate else "closed"
    print(
        f"  {run.label:<22} {rate:>7}  sent {run.sent:>6}  answered {run.answered:>6}  "
        f"correct/s {run.goodput:>7.1f}  p50 {run.p50_ms:>8.2f}  p99 {run.p99_ms:>8.2f}  "
        f"p99.9 {run.p999_ms:>8.2f}  max {run.max_ms:>8.2f} ms  cpu {run.cpu_ms:.2f} ms/correct"
        + (f"  connections <= {run.peak_connections}" if run.peak_connections else ""),
        flush=True,
    )


def expected_answers(url: str, ca: Path, mix: Sequence[Any]) -> dict[tuple[str, str], Any]:
    """Each mix item's answer from the unloaded webhook: (endpoint, uid) -> (allowed, code)."""
    client = urllib3.PoolManager(ca_certs=str(ca), retries=False)
    expected: dict[tuple[str, str], Any] = {}
    for item in mix:
        body = json.dumps(item.review).encode()
        answer = client.request("POST", f"{url}/{item.endpoint}", body=body, timeout=10)
        response = json.loads(answer.data)["response"]
        if (response.get("status") or {}).get("code") == 503:
            raise SystemExit(f"the unloaded webhook could not decide {item.label}: {response}")
        key = (item.endpoint, response["uid"])
        expected[key] = (response["allowed"], (response.get("status") or {}).get("code"))
    return expected


def refused_connections(metrics_url: str) -> int:
    """New connections the webhook reset unserved so far (its workers' total), from its
    ``/metrics`` on the probe port (the webhook's own port may refuse connections then)."""
    return int(webhook_metric(metrics_url, "edgepolicy_webhook_refused_connections_total"))


def webhook_metric(metrics_url: str, series: str) -> float:
    """The value of ``series`` at ``metrics_url``."""
    text = urllib3.request("GET", metrics_url, timeout=10, retries=False).data.decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[1])
    raise SystemExit(f"the webhook's /metrics has no {series}")


def webhook_judge(expected: dict[tuple[str, str], Any]) -> Any:
    """A judge of webhook answers: the unloaded answer, not a failure-mode one."""

    def is_correct(url: str, body: bytes) -> bool:
        try:
            response = json.loads(body)["response"]
        except (ValueError, KeyError, TypeError):
            return False
        key = (url.rsplit("/", 1)[-1], response.get("uid"))
        got = (response.get("allowed"), (response.get("status") or {}).get("code"))
        return expected.get(key) == got

    return is_correct


def opa_judge(_url: str, body: bytes) -> bool:
    """A judge of OPA answers: a decision document."""
    try:
        return "result" in json.loads(body)
    except ValueError:
        return False


# ---- stalled connections -----------------------------------------------------------------------


async def _hold(
    kind: str, host: str, port: int, tls: ssl.SSLContext, start: float, stop: float
) -> None:
    """Keep one stalled connection of ``kind`` open from ``start`` until ``stop``, reopening it
    when closed."""
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < stop:
        writer = None
        try:
            if kind == "hello":
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(b"\x16\x03\x01")
                trickle = b""
            else:
                reader, writer = await asyncio.open_connection(host, port, ssl=tls)
                writer.write(b"POST /validate HTTP/1.1\r\nHost: bench\r\n")
                if kind == "body":
                    writer.write(b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
                trickle = b"{" if kind == "body" else b"X"
            while time.monotonic() < stop:
                if trickle:
                    writer.write(trickle)
                    await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1024), 2.0) == b"":
                        break  # closed by the webhook: open another
                except TimeoutError:
                    continue
                break
        except (OSError, ssl.SSLError, TimeoutError):
            await asyncio.sleep(0.1)
        finally:
            if writer is not None:
                writer.close()


def _stall(host: str, port: int, count: int, spread: float, seconds: float) -> None:
    """Hold ``count`` stalled connections (a third of each kind) for ``seconds``, opened evenly
    over the first ``spread`` seconds (as connections held for a while are: all opened at once,
    they would also all be closed at once by the timeouts, a flood of new connections every
    few seconds rather than stalled ones)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count * 2 + 256)), hard))
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    began = time.monotonic()
    stop = began + seconds

    async def main() -> None:
        kinds = ("hello", "headers", "body")
        await asyncio.gather(
            *(
                _hold(kinds[i % 3], host, port, tls, began + i * spread / count, stop)
                for i in range(count)
            )
        )

    asyncio.run(main())


@dataclass(frozen=True)
class Bench:
    """OPA and `edgepolicy serve` in front of it, with the mix's vegeta targets for both."""

    url: str
    ca: Path
    process: subprocess.Popen[bytes]
    opa: OpaProcess
    targets: Path
    opa_targets: Path
    judge: Any
    metrics_url: str  # the webhook's /metrics on its probe port


@contextmanager
def bench_servers(*, workers: int, threads: int, prefix: str) -> Iterator[Bench]:
    """Start OPA (the shipped library, the example policies) and the webhook in front of it."""
    mix = request_mix()
    data = local_data([EXAMPLES / "policies"], [])
    data["edgepolicy"].update(SETTINGS["edgepolicy"])
    probe_port = _free_port()
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        OpaProcess(find_opa(), paths=[library_path()], data=data) as opa,
        webhook_server(
            Path(tmp), opa.url, workers=workers, threads=threads, probe_port=probe_port
        ) as (url, ca, process),
    ):
        targets = Path(tmp) / "targets.json"
        opa_targets = write_targets(targets, mix, webhook=url, opa=opa.url)
        judge = webhook_judge(expected_answers(url, ca, mix))
        metrics_url = f"http://127.0.0.1:{probe_port}/metrics"
        yield Bench(url, ca, process, opa, targets, opa_targets, judge, metrics_url)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per vegeta run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="serve --threads")
    parser.add_argument("--stalled", type=int, default=1000, help="stalled connections")
    parser.add_argument("--probe-rate", type=int, default=100, help="req/s beside the stalls")
    parser.add_argument(
        "--pairs", type=int, default=3, help="webhook and OPA runs at 200/s, in turn"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not VEGETA.is_file():
        print("vegeta not found: run scripts/install-tools.sh vegeta", file=sys.stderr)
        return 2
    runs: dict[str, Run] = {}
    with bench_servers(
        workers=args.workers, threads=args.threads, prefix="edgepolicy-bench-"
    ) as bench:
        url, ca, opa = bench.url, bench.ca, bench.opa
        targets, opa_targets, judge = bench.targets, bench.opa_targets, bench.judge
        duration = args.duration

        assert opa.pid is not None
        servers = [bench.process.pid, *_children(bench.process.pid), opa.pid]
        port = int(url.rsplit(":", 1)[1])

        def webhook(
            label: str, rate: int, seconds: float = duration, connections: int = 5000
        ) -> Run:
            runs[label] = vegeta(
                targets,
                label=label,
                rate=rate,
                duration=seconds,
                ca=ca,
                is_correct=judge,
                pids=servers,
                connections=connections,
                port=port,
            )
            _show(runs[label])
            return runs[label]

        def direct(label: str, rate: int, connections: int = 5000) -> Run:
            runs[label] = vegeta(
                opa_targets,
                label=label,
                rate=rate,
                duration=duration,
                ca=None,
                is_correct=opa_judge,
                pids=[opa.pid],  # type: ignore[list-item]
                connections=connections,
            )
            _show(runs[label])
            return runs[label]

        def best(measure: Any, label: str) -> Run:
            """The closed-loop run with the most correct answers per second."""
            tried = [measure(f"{label} x{n}", 0, connections=n) for n in CLOSED_LOOP_CONNECTIONS]
            runs[label] = max(tried, key=lambda run: run.goodput)
            return runs[label]

        print(f"webhook {url} ({args.workers} workers, --threads {args.threads}), OPA {opa.url}")
        webhook("warm-up", 50, 2)
        capacity = best(webhook, "webhook capacity").goodput
        opa_capacity = best(direct, "OPA capacity").goodput
        at_200 = []
        for pair in range(1, args.pairs + 1):
            hook_run = webhook(f"webhook 200/s #{pair}", 200)
            at_200.append((hook_run, direct(f"OPA 200/s #{pair}", 200)))
        unloaded = [webhook("probe unloaded", args.probe_rate, 2 * duration)]
        settle = max(duration, SPREAD_SECONDS)  # the stalled connections open and settle
        stall = multiprocessing.Process(
            target=_stall,
            args=("127.0.0.1", port, args.stalled, SPREAD_SECONDS, settle + 2 * duration + 1),
        )
        stall.start()
        time.sleep(settle)
        assert stall.pid is not None
        stall_cpu = cpu_seconds([stall.pid])
        reset_before = refused_connections(bench.metrics_url)
        stalled = webhook(f"probe {args.stalled} stalled", args.probe_rate, 2 * duration)
        stall_cpu = cpu_seconds([stall.pid]) - stall_cpu
        stall_resets = refused_connections(bench.metrics_url) - reset_before
        stall.join()
        time.sleep(1)  # the webhook closes what the stalling process left
        unloaded.append(webhook("probe unloaded after", args.probe_rate, 2 * duration))
        overloads, refused, shut = [], [], []
        for factor in (2, 5):
            before = refused_connections(bench.metrics_url)
            closed = webhook_metric(bench.metrics_url, CLOSED_SERIES)
            overloads.append(webhook(f"webhook {factor}x capacity", round(factor * capacity)))
            refused.append(refused_connections(bench.metrics_url) - before)
            shut.append(webhook_metric(bench.metrics_url, CLOSED_SERIES) - closed)

    print("\nratios (same run):")
    print(f"  capacity webhook / OPA direct: {capacity:.0f} / {opa_capacity:.0f} = "
          f"{capacity / opa_capacity:.2f} (target >= 0.8)")  # fmt: skip
    hook, direct_run = runs["webhook capacity"], runs["OPA capacity"]
    print(f"  CPU per correct answer (servers + vegeta) webhook / OPA direct: {hook.cpu_ms:.2f} / "
          f"{direct_run.cpu_ms:.2f} ms: capacity on {os.cpu_count()} idle cores "
          f"{hook.cpu_capacity:.0f} / {direct_run.cpu_capacity:.0f} = "
          f"{hook.cpu_capacity / direct_run.cpu_capacity:.2f}")  # fmt: skip
    ratios = sorted(hook_run.p99_ms / opa_run.p99_ms for hook_run, opa_run in at_200)
    shown = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    print(f"  p99 at 200/s webhook / OPA direct, {len(at_200)} pairs in turn: "
          + ", ".join(f"{h.p99_ms:.1f} / {o.p99_ms:.1f} ms" for h, o in at_200)
          + f"; median ratio {ratios[len(ratios) // 2]:.2f} (of {shown}; "
          "target <= 1.5)")  # fmt: skip
    for factor, run, reset, closed in zip((2, 5), overloads, refused, shut, strict=True):
        print(f"  {factor}x capacity ({run.rate}/s): p99.9 {run.p999_ms / 1000:.2f} s "
              f"(deadline {DEADLINE_SECONDS:g} s), goodput {run.goodput:.0f}/s = "
              f"{run.goodput / capacity:.2f} of capacity (target >= 0.9), "
              f"{run.sent - run.answered} unanswered ({reset} new connections reset unserved; "
              f"the workers' sockets closed {closed:.1f} s in all), "
              f"up to {run.peak_connections} connections open")  # fmt: skip
        print(f"    vegeta used {run.client_cores:.2f} cores ({hook.client_cores:.2f} at "
              f"capacity), the servers {run.server_cores:.2f} ({hook.server_cores:.2f}): "
              f"goodput per server core {run.per_server_core / hook.per_server_core:.2f} of "
              f"that at capacity; were refusing free, the cores vegeta leaves would allow at "
              f"most {goodput_ceiling(run, hook):.2f} of capacity")  # fmt: skip
    baseline = sum(run.p99_ms for run in unloaded) / len(unloaded)
    print(f"  p99 with {args.stalled} stalled connections / without (before and after: "
          f"{' and '.join(f'{run.p99_ms:.1f}' for run in unloaded)} ms): {stalled.p99_ms:.1f} / "
          f"{baseline:.1f} ms = {stalled.p99_ms / baseline:.2f} (target < 2), "
          f"correct {stalled.correct}/{stalled.sent}; the stalling process (reopening what the "
          f"timeouts close) used {stall_cpu / stalled.seconds:.2f} cores meanwhile; "
          f"{stall_resets} new connections reset")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({k: asdict(v) for k, v in runs.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
