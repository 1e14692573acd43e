"""A real Prometheus fed with series of known shape, for the FinOps tests and benchmarks.

``OpenMetricsWriter`` streams series (one metric family after another, as OpenMetrics requires)
into a text file; ``backfill`` turns it into TSDB blocks with ``promtool tsdb
create-blocks-from openmetrics``; ``PrometheusServer`` runs the pinned ``prometheus`` (built by
``scripts/install-tools.sh prometheus``) on that TSDB, on loopback and a free port, with the
shipped rules of deploy/monitoring loaded, until it answers ``/-/ready``.

Backfilled samples must be older than the head block of the running server: generate them
before the server starts (and before ``now``) and query them with explicit evaluation times.
"""

from __future__ import annotations

import math
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import urllib3

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".tools" / "bin"
PROMETHEUS = BIN / "prometheus"
PROMTOOL = BIN / "promtool"
RULE_FILES = tuple(sorted((ROOT / "deploy" / "monitoring").glob("*.rules.yaml")))
MISSING_HINT = "build them with `make tools-e2e` (scripts/install-tools.sh prometheus)"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class OpenMetricsWriter:
    """Writes OpenMetrics text: call ``family`` once per metric name, then ``series`` for each
    of its series (samples in time order), then ``close`` (the ``# EOF`` line)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._families: set[str] = set()
        self._current: str | None = None

    def family(self, name: str) -> None:
        """Start the family ``name`` (OpenMetrics forbids interleaving families)."""
        if name in self._families:
            raise ValueError(f"family {name} written twice")
        self._families.add(name)
        self._current = name

    def series(self, labels: Mapping[str, str], samples: Iterable[tuple[float, float]]) -> None:
        """Write one series of the current family: ``(unix seconds, value)`` pairs."""
        if self._current is None:
            raise ValueError("series() before family()")
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        prefix = f"{self._current}{{{label_text}}} "
        self._out.writelines(
            f"{prefix}{_number(value)} {timestamp:.3f}\n" for timestamp, value in samples
        )

    def close(self) -> None:
        """End the exposition."""
        self._out.write("# EOF\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if value != int(value) else str(int(value))


def backfill(openmetrics: Path, tsdb: Path, *, max_block_duration: str = "24h") -> float:
    """Create TSDB blocks under ``tsdb`` from ``openmetrics``; return the seconds it took.

    Raises:
        RuntimeError: promtool failed (its output is in the message).
    """
    begun = time.monotonic()
    done = subprocess.run(
        [
            str(PROMTOOL),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            f"--max-block-duration={max_block_duration}",
            str(openmetrics),
            str(tsdb),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool backfill failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - begun


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrometheusServer:
    """The real Prometheus on ``tsdb`` (loopback, free port), the shipped rule files loaded.

    Use as a context manager; ``url`` is its base URL once entered.
    """

    def __init__(
        self,
        tsdb: Path,
        workdir: Path,
        *,
        rule_files: Iterable[Path] = RULE_FILES,
        evaluation_interval: str = "15s",
        extra_config: str = "",
    ) -> None:
        self.tsdb = tsdb
        self.workdir = workdir
        self.rule_files = tuple(rule_files)
        self.evaluation_interval = evaluation_interval
        self.extra_config = extra_config
        self.url = ""
        self.log_path = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        config = self.workdir / "prometheus.yml"
        rules = "".join(f"  - {path}\n" for path in self.rule_files) or "  []\n"
        config.write_text(
            f"global:\n  evaluation_interval: {self.evaluation_interval}\n"
            f"rule_files:\n{rules}{self.extra_config}"
        )
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.tsdb}",
                # Backfilled data is days old: keep it (the default 15d would drop older blocks).
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, timeout: float = 120.0) -> None:
        http = urllib3.PoolManager(retries=False, timeout=2.0)
        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._process.returncode}:\n"
                    f"{self.log_path.read_text(errors='replace')}"
                )
            try:
                if http.request("GET", f"{self.url}/-/ready").status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout}s:\n{self.log_path.read_text()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def steps(start: float, end: float, interval: float) -> Iterator[float]:
    """Timestamps ``start, start+interval, ...`` before ``end``."""
    count = int((end - start) // interval)
    return (start + i * interval for i in range(count))
