"""A local OPA that ``edgepolicy serve`` starts and keeps alive when no ``--opa-url`` is given.

OPA is loaded with the shipped Rego library, the ``--data`` files and the policy objects found
under ``--policies`` (read exactly as ``edgepolicy check`` reads them). A watchdog thread checks
OPA's ``/health`` and restarts it on the same address when it stops answering, so the workers'
URL never changes. An OPA that cannot answer gets no grace period: it is killed (SIGKILL) and
replaced. One that is stopped (SIGSTOP, a debugger) or dead is seen in its process state at once,
without waiting for health checks to time out.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import socket
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepolicy.data_files import load_data_files
from edgepolicy.errors import OpaError
from edgepolicy.manifests import is_policy_object, load_paths
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OpaProcess
from edgepolicy.policy_data import policies_to_data
from edgepolicy.validated_policies import validate_policies

_LOG = logging.getLogger("edgepolicy.webhook.opa")
# How long one health check waits: OPA answers /health in well under a millisecond when it runs.
HEALTH_TIMEOUT_SECONDS = 0.25
# How long a running OPA may leave every health check unanswered before it is replaced: long
# enough that a merely overloaded machine (an OPA not scheduled for a while) costs no restart.
UNANSWERED_SECONDS = 2.0
# Process states (/proc/PID/stat) of an OPA that cannot answer however long it is given:
# stopped or traced (T, t), a zombie or dead (Z, X).
_STOPPED_STATES = frozenset("Tt")
_DEAD_STATES = frozenset("ZX")
# Where process states can be read (Linux); elsewhere only health checks tell.
_PROC = Path("/proc")


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
    section = data.setdefault("edgepolicy", {})  # a mapping without policies: see load_data_files
    # Validated once, here: the decision reads only the validator's output.
    section["policies"] = policies_to_data(validate_policies(objs))
    return data


def _free_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


class OpaSupervisor:
    """Runs a :class:`OpaProcess` and replaces it whenever it stops answering.

    Every ``check_interval`` seconds the watchdog reads OPA's process state and asks its
    ``/health`` (``health_timeout`` seconds at most). A stopped or dead OPA is replaced at once;
    a running one when no health check was answered for ``unanswered_seconds``. The one
    replaced is killed without a grace period (it could not use one).

    ``start`` and ``stop`` belong to the process that called ``start``: a forked child (a
    gunicorn worker) inheriting this object never stops or restarts OPA. In a process patched
    by gevent (``edgepolicy serve``'s master) the watchdog is a greenlet, and fork copies
    greenlets into the child: there the copy ends at its next wake-up, and a fork first waits
    for a replacement in progress to finish, so that no copy is left in the middle of one. The
    watchdog's event and lock are made by ``start``, so they are gevent's once the process is
    patched (a thread's would block every greenlet of the process).
    """

    _stopping: threading.Event
    _stopped: threading.Event
    _lock: threading.Lock

    def __init__(
        self,
        opa_binary: Path,
        *,
        paths: Sequence[Path],
        data: Mapping[str, Any],
        check_interval: float = 0.25,
        health_timeout: float = HEALTH_TIMEOUT_SECONDS,
        unanswered_seconds: float = UNANSWERED_SECONDS,
    ) -> None:
        self._opa_binary = opa_binary
        self._paths = list(paths)
        self._data = dict(data)
        self._check_interval = check_interval
        self._health_timeout = health_timeout
        self._unanswered_seconds = unanswered_seconds
        self._address = _free_address()
        self._owner_pid = 0
        self._opa: OpaProcess | None = None
        self._watchdog: int | None = None  # the watchdog's thread (or greenlet) identifier
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
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._opa = self._launch()
        _STARTED.add(self)
        # A bare thread, not a threading.Thread: threading's record of a thread is dropped in a
        # forked child, where a greenlet copy ending would fail on it (a KeyError per worker).
        self._watchdog = _thread.start_new_thread(self._watch, ())

    def _launch(self) -> OpaProcess:
        opa = OpaProcess(self._opa_binary, paths=self._paths, data=self._data, addr=self._address)
        return opa.__enter__()

    @property
    def pid(self) -> int | None:
        """The process id of the OPA running now (None between a failure and its restart)."""
        opa = self._opa
        return opa.pid if opa is not None else None

    def _watch(self) -> None:
        try:
            self._watch_until_stopped()
        finally:
            self._stopped.set()

    def _watch_until_stopped(self) -> None:
        client = OpaClient(self.url, timeout=self._health_timeout, maxsize=1)
        answered = time.monotonic()
        while not self._stopping.wait(self._check_interval):
            if not self._owned():
                return  # a greenlet copied into a forked child (see the class)
            why = self._cannot_run()
            if why is None:
                if client.health():
                    answered = time.monotonic()
                    continue
                why = self._cannot_run()  # stopped while the check waited for an answer
                silent = time.monotonic() - answered
                if why is None and silent < self._unanswered_seconds:
                    continue
                why = why or f"no health check answered for {silent:.1f}s"
            self._restart(why)
            answered = time.monotonic()

    def _cannot_run(self) -> str | None:
        """Say why OPA cannot answer, judging by its process state; None when it can run (or
        the state is unknown: no Linux /proc)."""
        pid = self.pid
        if pid is None:
            return "not running"
        if not (_PROC / "self" / "stat").exists():
            return None
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except FileNotFoundError:
            return "exited"
        except OSError:
            return None
        state = stat.rpartition(")")[2].split()[0]  # after the command, which may hold spaces
        if state in _STOPPED_STATES:
            return "stopped"
        if state in _DEAD_STATES:
            return "exited"
        return None

    def _restart(self, why: str) -> None:
        with self._lock:
            if self._stopping.is_set() or not self._owned():
                return
            _LOG.warning("local OPA at %s cannot answer (%s); replacing it", self.url, why)
            if self._opa is not None:
                self._kill(self._opa)
            try:
                self._opa = self._launch()
            except OpaError as error:
                self._opa = None
                _LOG.error("local OPA did not restart (will retry): %s", error)
                return
            self.restarts += 1
            _LOG.warning("local OPA restarted at %s (restart %d)", self.url, self.restarts)

    @staticmethod
    def _kill(opa: OpaProcess) -> None:
        """Kill ``opa`` at once (SIGKILL ends even a stopped process) and clean up after it."""
        if opa.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(opa.pid, signal.SIGKILL)
        opa.stop()  # reaps the process: it is already dying, so this does not wait long

    def _owned(self) -> bool:
        """Tell whether this process started OPA (and so alone may replace or stop it)."""
        return os.getpid() == self._owner_pid

    def stop(self) -> None:
        """Stop the watchdog and OPA; does nothing in a process that did not start them."""
        if not self._owned():
            return
        self._stopping.set()
        with self._lock:  # before the watchdog ends: an OPA it restarted dies with it
            if self._opa is not None:
                self._opa.stop()
                self._opa = None
        if self._watchdog is not None:
            self._stopped.wait()


# Every supervisor started in this process, for the fork hook below.
_STARTED: weakref.WeakSet[OpaSupervisor] = weakref.WeakSet()


def _before_fork() -> None:
    """Before this process forks, wait until no supervisor is replacing its OPA (see
    :class:`OpaSupervisor`); a watchdog that forks (to start OPA) waits for none."""
    supervisors = list(_STARTED)
    if any(supervisor._watchdog == _thread.get_ident() for supervisor in supervisors):
        return
    for supervisor in supervisors:
        with supervisor._lock:
            pass


os.register_at_fork(before=_before_fork)
