"""A local OPA that ``edgepolicy serve`` starts and keeps alive when no ``--opa-url`` is given.

OPA is loaded with the shipped Rego library, the ``--data`` files and the policy objects found
under ``--policies`` (read exactly as ``edgepolicy check`` reads them). A watchdog thread checks
OPA's ``/health`` and restarts it on the same address when it stops answering, so the workers'
URL never changes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepolicy.data_files import load_data_files
from edgepolicy.errors import OpaError, UsageError
from edgepolicy.manifests import is_policy_object, load_paths
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_server import LocalOpa
from edgepolicy.policy_data import policies_to_data
from edgepolicy.validated_policies import validate_policies

_LOG = logging.getLogger("edgepolicy.webhook.opa")


def local_data(policy_paths: Sequence[Path], data_files: Sequence[Path]) -> dict[str, Any]:
    """Return the data of the local OPA: the ``--data`` files (merged as ``check`` merges them)
    and, at ``edgepolicy.policies``, the policy objects under ``policy_paths``.

    Raises:
        UsageError: a data file does not exist, or sets ``edgepolicy.policies`` itself.
        InputError: a file cannot be read or parsed, or two policies share a name.
    """
    data = load_data_files(data_files)
    manifests = load_paths(policy_paths) if policy_paths else []
    objs = [manifest.obj for manifest in manifests if is_policy_object(manifest.obj)]
    section = data.setdefault("edgepolicy", {})
    if not isinstance(section, dict) or "policies" in section:
        raise UsageError(
            "--data files must not set data.edgepolicy.policies: give policy objects with "
            "--policies"
        )
    # Validated once, here: the decision reads only the validator's output.
    section["policies"] = policies_to_data(validate_policies(objs))
    return data


def _free_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


class SupervisedOpa:
    """Runs a :class:`LocalOpa` and restarts it whenever it stops answering.

    ``start`` and ``stop`` belong to the process that called ``start``: a forked child (a
    gunicorn worker) inheriting this object never stops or restarts OPA.
    """

    def __init__(
        self,
        opa_binary: Path,
        *,
        paths: Sequence[Path],
        data: Mapping[str, Any],
        check_interval: float = 0.5,
        failures_before_restart: int = 2,
    ) -> None:
        self._opa_binary = opa_binary
        self._paths = list(paths)
        self._data = dict(data)
        self._check_interval = check_interval
        self._failures_before_restart = failures_before_restart
        self._address = _free_address()
        self._owner_pid = 0
        self._opa: LocalOpa | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watchdog: threading.Thread | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        """The base URL OPA answers on (stable across restarts)."""
        return f"http://{self._address}"

    def start(self) -> None:
        """Start OPA, wait until it answers, and start the watchdog.

        Raises:
            OpaError: OPA did not start (with its log's tail).
        """
        self._owner_pid = os.getpid()
        self._opa = self._launch()
        self._watchdog = threading.Thread(target=self._watch, name="opa-watchdog", daemon=True)
        self._watchdog.start()

    def _launch(self) -> LocalOpa:
        opa = LocalOpa(self._opa_binary, paths=self._paths, data=self._data, addr=self._address)
        return opa.__enter__()

    def _watch(self) -> None:
        client = OpaClient(self.url, timeout=1.0, maxsize=1)
        failures = 0
        while not self._stopping.wait(self._check_interval):
            failures = 0 if client.health() else failures + 1
            if failures >= self._failures_before_restart:
                failures = 0
                self._restart()

    def _restart(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            _LOG.warning("local OPA at %s stopped answering; restarting it", self.url)
            if self._opa is not None:
                self._opa.stop()
            try:
                self._opa = self._launch()
            except OpaError as error:
                self._opa = None
                _LOG.error("local OPA did not restart (will retry): %s", error)
                return
            self.restarts += 1
            _LOG.warning("local OPA restarted at %s (restart %d)", self.url, self.restarts)

    def stop(self) -> None:
        """Stop the watchdog and OPA; does nothing in a process that did not start them."""
        if os.getpid() != self._owner_pid:
            return
        self._stopping.set()
        with self._lock:  # before the watchdog ends: an OPA it restarted dies with it
            if self._opa is not None:
                self._opa.stop()
                self._opa = None
        if self._watchdog is not None:
            self._watchdog.join()
