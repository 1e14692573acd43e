"""Run a real OPA server on the loopback interface for as long as it is needed."""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from edgepolicy.bundle_format import (
    bundle_roots,
    check_data_outside_roots,
    check_signature_key_ids,
    is_signed,
)
from edgepolicy.errors import OpaError, UsageError
from edgepolicy.library import opa_arguments
from edgepolicy.opa_client import OpaClient
from edgepolicy.verification_keys import VerificationKey

_POLL_SECONDS = 0.05
_STOP_SECONDS = 5.0
_LOG_TAIL_CHARS = 2000
_PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Go's GC target for OPA unless the environment sets GOGC: a decision allocates thousands of small
# values, and collecting at 4x the live heap (a few MB) instead of 2x cuts OPA's CPU per decision
# by about a third (docs/performance.md).
OPA_GOGC = "400"


class OpaProcess:
    """A real ``opa run --server`` process, as a context manager.

    On entry OPA starts on a free 127.0.0.1 port (or ``addr``) with the Rego and data
    ``paths`` (files or directories, loaded file by file), the ``bundles`` (``.tar.gz``
    tarballs, loaded the way OPA loads bundles, so their ``.manifest`` roots apply) and
    ``data`` (written to a temporary file and merged at the root of ``data``); entry returns
    once ``/health`` answers. On exit the process is stopped. ``url`` is the base URL to give
    an :class:`OpaClient`.

    With a ``verification_key`` the bundles are loaded by OPA's bundle plugin (``file://``
    resources) with signature verification, and entry waits until every bundle is activated;
    a bundle that fails verification fails the start. A signed bundle without a key is
    refused rather than loaded unverified, and so is one whose signature names another key
    id than the key's (OPA itself would let that pass).
    """

    def __init__(
        self,
        opa_binary: Path,
        *,
        paths: Sequence[Path] = (),
        bundles: Sequence[Path] = (),
        data: Mapping[str, Any] | None = None,
        addr: str | None = None,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        verification_key: VerificationKey | None = None,
    ) -> None:
        """Describe the server to run; nothing starts before ``__enter__``.

        Raises:
            UsageError: ``data`` sets values under a root that one of the ``bundles`` owns
                (OPA would silently drop them), a bundle's ``.manifest`` is unreadable, a
                bundle is signed but no ``verification_key`` is given, or its
                ``.signatures.json`` is unreadable or names another key id than the key's.
        """
        self._binary = Path(opa_binary)
        self._paths = [Path(path) for path in paths]
        self._bundles = [Path(bundle) for bundle in bundles]
        self._data = dict(data) if data else None
        self._addr = addr
        self._log_path = log_path
        self._extra_args = list(extra_args)
        self._startup_timeout = startup_timeout
        self._verification_key = verification_key
        self._process: subprocess.Popen[bytes] | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._log: io.BufferedWriter | None = None
        self.url = ""
        for bundle in self._bundles:
            if self._data:
                check_data_outside_roots(self._data, bundle_roots(bundle), bundle)
            if verification_key is None and is_signed(bundle):
                raise UsageError(
                    f"bundle {bundle} is signed: give the public key that verifies it "
                    "(and the key id its signature names)"
                )
            if verification_key is not None:
                check_signature_key_ids(bundle, verification_key.key_id)

    def __enter__(self) -> OpaProcess:
        """Start OPA and wait until it answers.

        Raises:
            OpaError: OPA exited or did not become healthy in time (with its log's tail).
        """
        self._tempdir = tempfile.TemporaryDirectory(prefix="edgepolicy-opa-")
        try:
            for attempt in range(_PORT_ATTEMPTS):
                try:
                    self._start()
                    break
                except OpaError as error:
                    port_taken = "address already in use" in str(error)
                    if self._addr is not None or not port_taken or attempt == _PORT_ATTEMPTS - 1:
                        raise
                    self._stop_process()  # another process took the free port: pick again
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop OPA and remove the temporary files."""
        self.stop()

    @property
    def pid(self) -> int | None:
        """The OPA process id while it runs."""
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        """Stop OPA (SIGTERM, then SIGKILL after a few seconds) and clean up; idempotent."""
        self._stop_process()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def _stop_process(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(_STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _start(self) -> None:
        assert self._tempdir is not None
        workdir = Path(self._tempdir.name)
        log_path = self._log_path or workdir / "opa.log"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        addr = self._addr or f"127.0.0.1:{_free_port()}"
        self.url = f"http://{addr}"
        command = [
            str(self._binary),
            "run",
            "--server",
            "--addr",
            addr,
            "--log-level",
            "error",
            "--skip-version-check",
            "--shutdown-grace-period",
            "1",
            *self._extra_args,
        ]
        if self._verification_key is None:
            command.extend(str(bundle) for bundle in self._bundles)
        else:
            config_file = workdir / "config.json"
            config = _bundle_plugin_config(self._bundles, self._verification_key)
            config_file.write_text(json.dumps(config), encoding="utf-8")
            command.extend(["--config-file", str(config_file)])
        for path in self._paths:
            command.extend(opa_arguments(path))  # the shipped library: its runtime files
        if self._data:
            data_file = workdir / "data.json"
            data_file.write_text(json.dumps(self._data), encoding="utf-8")
            command.append(str(data_file))
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                env=opa_environment(os.environ),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),  # only a prctl: safe with other threads
            )
        except OSError as error:
            raise OpaError(f"cannot run OPA at {self._binary}: {error}") from error
        self._wait_healthy(log_path)

    def _wait_healthy(self, log_path: Path) -> None:
        assert self._process is not None
        client = OpaClient(self.url, timeout=1.0, maxsize=1)
        deadline = time.monotonic() + self._startup_timeout
        try:
            while True:
                if self._process.poll() is not None:
                    raise OpaError(
                        f"OPA exited with status {self._process.returncode} while starting: "
                        f"{_tail(log_path)}"
                    )
                if client.health(bundles=self._verification_key is not None):
                    return
                failure = _bundle_failure(log_path)
                if failure is not None:
                    raise OpaError(f"OPA refused a bundle: {failure}")
                if time.monotonic() > deadline:
                    raise OpaError(
                        f"OPA did not answer at {self.url} within {self._startup_timeout:g}s: "
                        f"{_tail(log_path)}"
                    )
                time.sleep(_POLL_SECONDS)
        finally:
            client.close()


def opa_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the environment for an OPA process: ``environ`` with GOGC defaulted to OPA_GOGC."""
    return {**environ, "GOGC": environ.get("GOGC", OPA_GOGC)}


def _die_with_parent() -> Callable[[], None] | None:
    """Return what the forked OPA runs before exec so that it dies with this process, even
    when this process is killed without a chance to stop it (SIGKILL, OOM killer); None where
    Linux's PR_SET_PDEATHSIG is not available.

    The kernel sends SIGKILL when the thread that started OPA ends, so OPA must be started
    by a thread that lives as long as OPA should (the main thread, or a supervising thread).
    The function is resolved before the fork; the child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return set_death_signal


def _bundle_plugin_config(bundles: Sequence[Path], key: VerificationKey) -> dict[str, Any]:
    """OPA configuration loading each bundle file through the bundle plugin, verified."""
    return {
        "bundles": {
            f"bundle-{position}": {
                "resource": bundle.resolve().as_uri(),
                "signing": {"keyid": key.key_id},
            }
            for position, bundle in enumerate(bundles)
        },
        "keys": {key.key_id: {"algorithm": key.algorithm, "key": key.pem}},
    }


def _bundle_failure(log_path: Path) -> str | None:
    """The first bundle-plugin error in OPA's JSON log, if any."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        is_bundle_entry = isinstance(entry, dict) and entry.get("plugin") == "bundle"
        if is_bundle_entry and entry.get("level") == "error":
            return str(entry.get("msg", line))
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(log_path: Path) -> str:
    """The end of OPA's log as a reader needs it: plain lines and the messages of error
    entries (OPA's warnings, e.g. about running as root, are left out)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    kept: list[str] = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            kept.append(line.strip())
            continue
        if not isinstance(entry, dict):
            kept.append(line.strip())
        elif entry.get("level") == "error":
            cause = f": {entry['err']}" if entry.get("err") else ""
            kept.append(f"{entry.get('msg', line)}{cause}")
    text = " ".join(line for line in kept if line)
    return text[-_LOG_TAIL_CHARS:] or "(no output)"
