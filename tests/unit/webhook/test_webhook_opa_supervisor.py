"""The local OPA's supervisor, with a stand-in OPA process whose health the test controls: a
stopped process is replaced at once, a running one that stops answering after the unanswered
time, and the one replaced is killed (real processes, real signals; the real OPA is replaced in
tests/integration/test_webhook_serve.py)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from edgepolicy.webhook import opa_supervisor
from edgepolicy.webhook.opa_supervisor import OpaSupervisor

# Answers /health like OPA until the file named by FAKE_OPA_SILENT exists; then it keeps
# running but never answers.
FAKE_OPA = f"""#!{sys.executable}
import http.server, os, pathlib, sys, time
host, port = sys.argv[sys.argv.index("--addr") + 1].rsplit(":", 1)
silent = pathlib.Path(os.environ["FAKE_OPA_SILENT"])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        while silent.exists():
            time.sleep(0.05)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{{}}")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
"""


@pytest.fixture
def silent_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    flag = tmp_path / "silent"
    monkeypatch.setenv("FAKE_OPA_SILENT", str(flag))
    return flag


@pytest.fixture
def supervise(tmp_path: Path, silent_flag: Path) -> Iterator[Callable[[float], OpaSupervisor]]:
    binary = tmp_path / "opa"
    binary.write_text(FAKE_OPA)
    binary.chmod(0o755)
    started: list[OpaSupervisor] = []

    def start(unanswered_seconds: float) -> OpaSupervisor:
        supervisor = OpaSupervisor(
            binary,
            paths=[],
            data={},
            check_interval=0.05,
            health_timeout=0.1,
            unanswered_seconds=unanswered_seconds,
        )
        supervisor.start()
        started.append(supervisor)
        return supervisor

    yield start
    silent_flag.unlink(missing_ok=True)
    for supervisor in started:
        supervisor.stop()


def _replaced(supervisor: OpaSupervisor, old: int, within: float) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pid = supervisor.pid
        if pid is not None and pid != old:
            return pid
        time.sleep(0.02)
    raise AssertionError(f"OPA {old} was not replaced within {within}s")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def test_a_stopped_opa_is_killed_and_replaced_without_waiting_for_checks(
    supervise: Callable[[float], OpaSupervisor], caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = supervise(3600)  # only the process state can tell within the test
    old = supervisor.pid
    assert old is not None
    caplog.set_level(logging.WARNING, logger="edgepolicy.webhook.opa")
    os.kill(old, signal.SIGSTOP)
    try:
        # Generous for a stand-in that starts in milliseconds, and shorter than the 5 s SIGTERM
        # grace a stopped process would be waited out with (it cannot act on SIGTERM).
        _replaced(supervisor, old, within=3)
        assert _gone(old)
    finally:
        if not _gone(old):
            os.kill(old, signal.SIGCONT)
    assert supervisor.restarts == 1
    assert "cannot answer (stopped); replacing it" in caplog.text


def test_a_running_opa_that_stops_answering_is_replaced_after_the_unanswered_time(
    supervise: Callable[[float], OpaSupervisor],
    silent_flag: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = supervise(0.5)
    old = supervisor.pid
    assert old is not None
    caplog.set_level(logging.WARNING, logger="edgepolicy.webhook.opa")
    silent_flag.touch()
    time.sleep(0.2)  # well within the unanswered time: still the same OPA
    assert supervisor.pid == old
    deadline = time.monotonic() + 10
    while supervisor.pid == old and time.monotonic() < deadline:  # until it is killed
        time.sleep(0.02)
    silent_flag.unlink()  # so that the replacement answers
    new = _replaced(supervisor, old, within=10)
    assert _gone(old)
    assert supervisor.pid == new
    assert "no health check answered for" in caplog.text


def test_a_dead_opa_is_replaced_at_once(supervise: Callable[[float], OpaSupervisor]) -> None:
    supervisor = supervise(3600)
    old = supervisor.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    _replaced(supervisor, old, within=10)
    assert supervisor.restarts == 1


def test_without_proc_only_health_checks_tell(
    supervise: Callable[[float], OpaSupervisor],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(opa_supervisor, "_PROC", tmp_path / "no-proc")  # as on macOS
    supervisor = supervise(0.5)
    old = supervisor.pid
    assert old is not None
    time.sleep(1.0)  # a healthy OPA is left alone
    assert supervisor.pid == old and supervisor.restarts == 0
    os.kill(old, signal.SIGSTOP)
    try:
        _replaced(supervisor, old, within=10)  # by the unanswered checks
    finally:
        if not _gone(old):
            os.kill(old, signal.SIGCONT)
    assert supervisor.restarts == 1


# gunicorn's master patched by gevent (serve): the watchdog is a greenlet, and fork copies it
# into the child. The child forked while an OPA is being replaced runs its loop for a while.
FORK_PROBE = """
from gevent import monkey
monkey.patch_all()
import os, signal, sys, time
from pathlib import Path
from edgepolicy.webhook.opa_supervisor import OpaSupervisor
supervisor = OpaSupervisor(Path(sys.argv[1]), paths=[], data={}, check_interval=0.05,
                           health_timeout=0.1, unanswered_seconds=0.3)
supervisor.start()
first = supervisor.pid
os.kill(first, signal.SIGKILL)
time.sleep(0.1)  # the watchdog has seen it and is starting the replacement
child = os.fork()
if child == 0:
    time.sleep(1.0)
    print("child", supervisor.restarts, supervisor._stopped.is_set(), flush=True)
    os._exit(0)
os.waitpid(child, 0)
print("parent", supervisor.restarts, supervisor.pid not in (None, first), flush=True)
supervisor.stop()
"""


def test_a_watchdog_forked_into_a_gevent_child_does_nothing_there(
    tmp_path: Path, silent_flag: Path
) -> None:
    binary = tmp_path / "opa"
    binary.write_text(FAKE_OPA)
    binary.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-c", FORK_PROBE, str(binary)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The fork waited for the replacement: the child holds its outcome and starts none itself;
    # its copy of the watchdog has ended, quietly (threading's record of a thread is gone there).
    assert sorted(result.stdout.splitlines()) == ["child 1 True", "parent 1 True"], result.stderr
    assert result.stderr.count("local OPA restarted") == 1, result.stderr
    assert "Traceback" not in result.stderr
