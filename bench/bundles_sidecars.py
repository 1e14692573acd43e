"""Real OPA sidecars and a real bundle service, for the bundle integration tests and benchmark.

A :class:`BundleService` runs ``edgepolicy bundle serve`` as a subprocess; a :class:`Sidecar`
runs ``opa run --server`` with the configuration an edge cluster uses (service, bundle with
signature verification and persistence, polling or long polling, the status API) and reads
what it enforces through OPA's REST API. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import urllib3
import yaml

BUNDLE_NAME = "edgepolicy"
RESOURCE = "edgepolicy.tar.gz"
KEY_ID = "edgepolicy-bundle"
_HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1.0, read=5.0))


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> float:
    """Poll ``check`` until it is true; return the seconds it took, or raise TimeoutError."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def _get_json(url: str) -> Any:
    try:
        response = _HTTP.request("GET", url)
    except urllib3.exceptions.HTTPError:
        return None
    return json.loads(response.data) if response.status == 200 else None


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """Stop ``process`` if there is one: SIGTERM, then SIGKILL after 10 seconds."""
    if process is not None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class BundleService:
    """``edgepolicy bundle serve --dir DIR`` on a fixed loopback port (restartable)."""

    def __init__(self, directory: Path, log: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> BundleService:
        """Start serving and wait until the port answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "edgepolicy",
            "bundle",
            "serve",
            "--dir",
            str(self.directory),
            "--port",
            str(self.port),
        ]
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 20, "the bundle service")
        return self

    def _answers(self) -> bool:
        try:
            _HTTP.request("GET", f"{self.url}/")
        except urllib3.exceptions.HTTPError:
            return False
        return True

    def stop(self) -> None:
        """Stop the service (SIGTERM, then SIGKILL)."""
        _stop(self._process)
        self._process = None

    def _pids(self) -> list[int]:
        assert self._process is not None
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        return [self._process.pid, *(int(pid) for pid in children.read_text().split())]

    def cpu_seconds(self) -> float:
        """Return the CPU time the service has used: its process and gunicorn's worker."""
        ticks = 0
        for pid in self._pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        """Return the resident memory of the service: its process and gunicorn's worker."""
        total = 0
        for pid in self._pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total


class Sidecar:
    """One ``opa run --server`` configured to pull the signed bundle from ``service_url``."""

    def __init__(
        self,
        opa: Path,
        workdir: Path,
        service_url: str,
        public_key_pem: str,
        *,
        algorithm: str = "ES256",
        long_polling: bool = True,
        min_delay: int = 1,
        max_delay: int = 2,
        long_polling_timeout: int = 30,
        service_type: str | None = None,
        resource: str = RESOURCE,
        nice: int = 0,
    ) -> None:
        self.opa = opa
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.nice = nice  # added to OPA's scheduling niceness (lower CPU priority)
        self.config_file = workdir / "opa-config.yaml"
        polling: dict[str, int] = {"min_delay_seconds": min_delay, "max_delay_seconds": max_delay}
        if long_polling:
            polling["long_polling_timeout_seconds"] = long_polling_timeout
        service: dict[str, str] = {"url": service_url}
        if service_type is not None:
            service["type"] = service_type  # "oci": resource is REGISTRY/REPOSITORY:TAG
        self.config = {
            "services": {"bundles": service},
            "bundles": {
                BUNDLE_NAME: {
                    "service": "bundles",
                    "resource": resource,
                    "persist": True,
                    "polling": polling,
                    "signing": {"keyid": KEY_ID},
                }
            },
            "keys": {KEY_ID: {"algorithm": algorithm, "key": public_key_pem}},
            "persistence_directory": str(workdir / "persisted"),
            "status": {"prometheus": True},
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Sidecar:
        """Start OPA and wait until its API answers (bundles may still be loading)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        command = [
            str(self.opa),
            "run",
            "--server",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--config-file",
            str(self.config_file),
            "--log-level",
            "info",
            "--skip-version-check",
            "--shutdown-grace-period",
            "1",
        ]
        env = {**os.environ, "GOMAXPROCS": "1"}
        with open(self.workdir / "opa.log", "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,  # noqa: PLW1509
            )
        wait_until(lambda: _get_json(f"{self.url}/health") is not None, 30, f"OPA on {self.url}")
        return self

    def stop(self) -> None:
        """Stop OPA (SIGTERM, then SIGKILL)."""
        _stop(self._process)
        self._process = None

    def status(self) -> Mapping[str, Any]:
        """Return this bundle's entry of OPA's status API (empty before the first attempt)."""
        body = _get_json(f"{self.url}/v1/status")
        bundles = (body or {}).get("result", {}).get("bundles") or {}
        return bundles.get(BUNDLE_NAME) or {}

    def revision(self) -> str | None:
        """Return the revision of the bundle OPA has activated (from ``data.system.bundles``)."""
        body = _get_json(f"{self.url}/v1/data/system/bundles/{BUNDLE_NAME}/manifest/revision")
        return (body or {}).get("result")

    def activated_at(self) -> float | None:
        """Return when OPA last activated a bundle, as a Unix time (from its status)."""
        stamp = self.status().get("last_successful_activation")
        if not stamp or stamp.startswith("0001-"):
            return None
        head, _, fraction = stamp.rstrip("Z").partition(".")
        seconds = datetime.fromisoformat(head + "+00:00").timestamp()
        return seconds + (float(f"0.{fraction}") if fraction else 0.0)

    def wait_for_revision(self, revision: str, timeout: float = 30) -> float:
        """Wait until OPA enforces ``revision``; return the seconds waited."""
        return wait_until(
            lambda: self.revision() == revision, timeout, f"revision {revision} on {self.url}"
        )

    def decide(self, input_doc: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return the decision document for ``input_doc``."""
        response = _HTTP.request(
            "POST",
            f"{self.url}/v1/data/edgepolicy/admission/decision",
            body=json.dumps({"input": input_doc}),
            headers={"Content-Type": "application/json"},
        )
        result: Mapping[str, Any] = json.loads(response.data)["result"]
        return result
