"""Real Prometheus for the end-to-end FinOps tests: OpenMetrics text of known shape backfilled
with `promtool tsdb create-blocks-from openmetrics`, then Prometheus started on that TSDB with,
when given, rule files, scrape targets, an Alertmanager and extra flags (what the alert path
needs beyond tests/integration/prometheus_support.py's PrometheusServer)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from e2e_support import BIN

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Series:
    """One series: its metric name, labels and (Unix seconds, value) samples in time order."""

    name: str
    labels: Labels
    samples: Sequence[tuple[float, float]]


def openmetrics(series: Iterable[Series]) -> str:
    """The OpenMetrics text of ``series``: families contiguous, untyped, ending in ``# EOF``."""
    lines: list[str] = []
    for entry in sorted(series, key=lambda s: s.name):
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(entry.labels.items()))
        for timestamp, value in entry.samples:
            lines.append(f"{entry.name}{{{labels}}} {value:.17g} {timestamp:.3f}")
    return "\n".join(lines) + "\n# EOF\n"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RunningPrometheus:
    """A Prometheus started by :func:`prometheus`."""

    url: str
    log: Path


@contextmanager
def prometheus(
    directory: Path,
    text: str,
    *,
    rule_files: Sequence[Path] = (),
    alertmanager: str | None = None,
    scrape: Sequence[str] = (),
    interval: str = "1s",
    extra: Sequence[str] = (),
) -> Iterator[RunningPrometheus]:
    """Backfill ``text`` into a TSDB under ``directory`` and run Prometheus on it, evaluating
    ``rule_files`` every ``interval``, scraping the ``host:port`` targets of ``scrape`` and
    sending alerts to the Alertmanager URL ``alertmanager``."""
    tsdb = directory / "tsdb"
    source = directory / "series.om"
    source.write_text(text)
    subprocess.run(
        [
            str(BIN / "promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(source),
            str(tsdb),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    config: dict[str, object] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
    }
    if scrape:
        config["scrape_configs"] = [
            {"job_name": "edgepolicy", "static_configs": [{"targets": list(scrape)}]}
        ]
    if alertmanager:
        host = alertmanager.removeprefix("http://")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(BIN / "prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tsdb}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                *extra,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + "/-/ready", process, log)
        yield RunningPrometheus(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url}: not ready within 60 s:\n{log.read_text()[-3000:]}")


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``url`` answers 200 (the server of ``process`` logging to ``log``)."""
    _wait_ready(url, process, log)
