"""gunicorn settings of the webhook and the local OPA's data (pure pieces)."""

from __future__ import annotations

import gc
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent  # type: ignore[import-untyped]
import pytest
from edgepolicy.webhook import metrics
from edgepolicy.webhook.app import ARRIVAL_KEY, PROBES_KEY, SERVICE_KEY
from edgepolicy.webhook.arrival_stamps import SO_TIMESTAMPNS
from edgepolicy.webhook.config import WebhookConfig
from edgepolicy.webhook.gunicorn_server import (
    EventedWorker,
    ResponseBuffer,
    ServerOptions,
    WebhookServer,
    _accept_queue_length,
    _Arbiter,
    _check_free,
    _Door,
    gunicorn_settings,
    listener_factory,
)
from edgepolicy.webhook.opa_supervisor import local_data
from gunicorn.workers.ggevent import GeventWorker  # type: ignore[import-untyped]

from edgepolicy.errors import InputError, UsageError
from edgepolicy.server_tls import ReloadingContext

KeyPairWriter = Callable[[Path, Path, str], object]
POLICY = """\
apiVersion: policy.apexlogic.com/v1alpha1
kind: FinOpsPolicy
metadata: {name: budget, namespace: ai}
spec: {targetWorkloadSelector: {matchLabels: {app: web}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"""


@pytest.fixture
def tls(tmp_path: Path, write_key_pair: KeyPairWriter) -> ReloadingContext:
    write_key_pair(tmp_path / "tls.crt", tmp_path / "tls.key", "webhook")
    return ReloadingContext(tmp_path / "tls.crt", tmp_path / "tls.key")


def test_settings_serve_tls_through_the_reloading_context(
    tmp_path: Path, tls: ReloadingContext
) -> None:
    options = ServerOptions(cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key")
    settings = gunicorn_settings(options, tls)
    assert settings["bind"] == ["0.0.0.0:8443"]
    assert settings["certfile"] == str(tmp_path / "tls.crt")
    assert settings["worker_class"] == "edgepolicy.webhook.gunicorn_server.EventedWorker"
    assert settings["worker_connections"] == options.max_connections
    assert settings["control_socket_disable"] is True
    context = settings["ssl_context"](None, lambda: ssl.create_default_context())
    assert context is tls.context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_ipv6_hosts_are_bracketed(tmp_path: Path, tls: ReloadingContext) -> None:
    options = ServerOptions(tmp_path / "tls.crt", tmp_path / "tls.key", host="::1", port=9443)
    assert gunicorn_settings(options, tls)["bind"] == ["[::1]:9443"]
    assert options.url == "https://[::1]:9443"
    assert ServerOptions(tmp_path / "c", tmp_path / "k", host="127.0.0.1").url == (
        "https://127.0.0.1:8443"
    )


def test_local_data_holds_the_policies_and_the_data_files(tmp_path: Path) -> None:
    (tmp_path / "policies.yaml").write_text(POLICY)
    (tmp_path / "settings.yaml").write_text(
        "edgepolicy: {settings: {enforcementActions: {finops.cpu: warn}}}"
    )
    data = local_data([tmp_path / "policies.yaml"], [tmp_path / "settings.yaml"])
    assert data["edgepolicy"]["settings"] == {"enforcementActions": {"finops.cpu": "warn"}}
    policies = data["edgepolicy"]["policies"]
    assert policies["validated"] is True
    assert list(policies["finops"]["ai"]) == ["budget"]
    assert policies["model"] == {}
    assert policies["invalid"] == {}


def test_local_data_validates_the_policies_once_and_keeps_the_invalid_ones_apart(
    tmp_path: Path,
) -> None:
    broken = POLICY.replace("name: budget", "name: broken").replace(
        "{matchLabels: {app: web}}", "{matchLabels: {app: web}}, costLimits: {maxCPUCores: -1}"
    )
    (tmp_path / "policies.yaml").write_text(POLICY + "---\n" + broken)
    policies = local_data([tmp_path / "policies.yaml"], [])["edgepolicy"]["policies"]
    assert list(policies["finops"]["ai"]) == ["budget"]
    [record] = policies["invalid"]["ai"]
    assert record["name"] == "broken"
    assert record["errors"] == [
        {
            "field": "spec.costLimits.maxCPUCores",
            "message": "must be a number greater than 0, got -1",
        }
    ]


def test_data_files_cannot_smuggle_policies(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("edgepolicy: {policies: {finops: {}}}")
    with pytest.raises(UsageError, match="data files must not set data.edgepolicy.policies"):
        local_data([], [tmp_path / "data.yaml"])


def test_unreadable_policies_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [unclosed")
    with pytest.raises(InputError, match="bad.yaml"):
        local_data([tmp_path / "bad.yaml"], [])


def test_a_worker_freezes_its_loaded_application_and_passes_arrival_stamps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []

    def probes(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append("probes")
        return []

    class Application:  # what the worker uses of the Flask application
        extensions = {SERVICE_KEY: SimpleNamespace(queue_wait=lambda: 0.25), PROBES_KEY: probes}

        def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
            seen.append(environ[ARRIVAL_KEY])
            return []

    monkeypatch.setattr(
        GeventWorker, "load_wsgi", lambda self: setattr(self, "wsgi", Application())
    )
    worker = EventedWorker.__new__(EventedWorker)
    gc.unfreeze()
    try:
        worker.load_wsgi()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    worker.wsgi({}, None)
    worker._request.arrived = 12.5  # set by the connection loop when the request's bytes came
    worker.wsgi({}, None)
    worker._request.probe = True  # a connection to the probe port: the probe views only
    worker.wsgi({}, None)
    assert seen == [None, 12.5, "probes"]  # outside a request no arrival time is known
    assert worker._queue_wait() == 0.25  # the application's, for refusing new connections


def test_a_forked_worker_sets_gunicorn_s_listeners_aside_until_it_runs(
    tmp_path: Path, tls: ReloadingContext
) -> None:
    # gunicorn's post_fork: the worker's listeners are closed (nothing waits in them while the
    # application loads) and made again, on the same address, when the worker runs.
    options = ServerOptions(cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key")
    post_fork = gunicorn_settings(options, tls)["post_fork"]
    worker = EventedWorker.__new__(EventedWorker)
    made = socket.create_server(("127.0.0.1", 0), reuse_port=True)  # as gunicorn makes it
    address = made.getsockname()
    worker.sockets = [made]
    post_fork(None, worker)
    assert made.fileno() == -1 and worker.sockets == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address)
    ((listen, name),) = worker._listeners
    again = listen()
    assert name == address and again.getsockname() == address
    socket.create_connection(address).close()
    again.close()


class _RecordingConnection:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(data)

    def fileno(self) -> int:
        return 7


def test_an_answer_is_sent_in_one_write() -> None:
    connection = _RecordingConnection()
    answer = ResponseBuffer(connection)
    answer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    assert answer.send(b"{}") == 2
    assert connection.writes == []  # gathered, not sent
    assert answer.fileno() == 7  # everything else is the connection's
    answer.flush()
    assert connection.writes == [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"]
    answer.flush()  # nothing more gathered: nothing sent
    assert len(connection.writes) == 1


def test_the_master_freezes_what_it_holds_before_each_fork(
    tmp_path: Path, tls: ReloadingContext
) -> None:
    settings = gunicorn_settings(ServerOptions(tmp_path / "tls.crt", tmp_path / "tls.key"), tls)
    gc.unfreeze()
    try:
        settings["pre_fork"](None, None)  # gunicorn calls it with the arbiter and the worker
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# In gunicorn's patched master: a child that is not a worker (the local OPA, run by gevent's
# subprocess) has just been killed, and gevent's loop has not run since (no yield).
REAP_PROBE = """
from gevent import monkey
monkey.patch_all()
import os, signal, subprocess
from edgepolicy.webhook.gunicorn_server import _Arbiter
opa = subprocess.Popen(["sleep", "30"])
arbiter = _Arbiter.__new__(_Arbiter)
arbiter.WORKERS, arbiter.reexec_pid, arbiter.dirty_arbiter_pid = {}, 0, 0
class Log:  # gunicorn logs an unknown child it reaped
    lines = []
    def debug(self, *args, **kwargs):
        self.lines.append(args)
arbiter.log = Log()
os.kill(opa.pid, signal.SIGKILL)
monkey.get_original("time", "sleep")(0.5)
arbiter.reap_workers()
try:
    status = opa.wait(5)
except subprocess.TimeoutExpired:
    status = "never"
print(len(arbiter.log.lines), status)
"""


def test_the_master_reaps_only_its_workers_so_gevent_sees_opa_end() -> None:
    # gunicorn's waitpid(-1) took the status first: gevent's subprocess never learnt that OPA
    # ended and the supervisor waited forever for the OPA it was replacing.
    result = subprocess.run(
        [sys.executable, "-c", REAP_PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["0", "-9"], result.stderr


def test_an_aborted_answer_is_dropped_not_sent_after_the_close() -> None:
    connection = _RecordingConnection()
    closed: list[str] = []
    connection.shutdown = lambda how: closed.append("shutdown")  # type: ignore[attr-defined]
    connection.close = lambda: closed.append("close")  # type: ignore[attr-defined]
    answer = ResponseBuffer(connection)
    answer.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    answer.shutdown(2)  # gunicorn aborts an answer whose application failed late
    answer.close()
    answer.flush()
    assert closed == ["shutdown", "close"] and connection.writes == []


def test_the_door_resets_a_connection_that_waited_too_long_and_drains_the_ones_behind_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # as the worker sets it
    served: list[float] = []
    log = SimpleNamespace(warning=lambda *args: None)
    door = _Door(
        listener,
        listen=lambda: listener,
        handle=lambda client, address, arrived: served.append(arrived),
        spawn=None,
        wait=0.2,
        busy=lambda: False,
        busy_wait=0.1,
        pause=0.05,
        calm=0.5,
        log=log,
    )
    monkeypatch.setattr(metrics.REFUSED_CONNECTIONS, "inc", lambda count=1: None)
    old = socket.create_connection(listener.getsockname())
    old.sendall(b"\x16\x03\x01")  # the start of a TLS hello
    time.sleep(0.3)  # waits longer than 0.2 s to be accepted
    door.do_handle(*listener.accept())
    assert served == [] and door.max_accept > 1  # reset; the ones behind it are as old
    with pytest.raises(ConnectionResetError):  # reset, not closed gracefully
        old.recv(1)
    fresh = socket.create_connection(listener.getsockname())
    fresh.sendall(b"\x16\x03\x01")
    time.sleep(0.05)
    door.do_handle(*listener.accept())
    assert len(served) == 1 and door.max_accept == 1  # served: one per wake-up again
    for sock in (old, fresh, listener):
        sock.close()


def _hello(address: Any) -> socket.socket:
    """A connection to ``address`` that sent the start of a TLS hello."""
    client = socket.create_connection(address)
    client.sendall(b"\x16\x03\x01")
    return client


def test_listeners_of_one_address_share_its_connections_and_refuse_them_when_all_are_closed() -> (
    None
):
    first = socket.create_server(("127.0.0.1", 0), reuse_port=True)  # as gunicorn makes one
    listen = listener_factory(first)
    second = listen()
    address = first.getsockname()
    clients = [socket.create_connection(address) for _ in range(20)]
    assert _accept_queue_length(first) + _accept_queue_length(second) == 20
    first.close()  # the connections waiting in it are reset; new ones go to the second
    clients += [socket.create_connection(address) for _ in range(5)]
    assert _accept_queue_length(second) >= 5
    second.close()
    with pytest.raises(ConnectionRefusedError):  # no listener open: refused at connect
        socket.create_connection(address)
    reopened = listen()
    clients.append(socket.create_connection(address))
    assert _accept_queue_length(reopened) == 1
    assert reopened.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS) == 1
    accepted, _ = reopened.accept()  # inherits TCP_NODELAY, as from gunicorn's listeners
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    clients.append(accepted)
    for sock in (*clients, reopened):
        sock.close()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
@pytest.mark.parametrize("dual_stack", [False, True])
def test_a_new_listener_on_an_ipv6_address_keeps_its_v6only_setting(dual_stack: bool) -> None:
    first = socket.create_server(
        ("::", 0), family=socket.AF_INET6, reuse_port=True, dualstack_ipv6=dual_stack
    )
    port = first.getsockname()[1]
    listen = listener_factory(first)
    first.close()
    second = listen()
    assert second.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == (not dual_stack)
    if dual_stack:  # IPv4 clients too
        client = socket.create_connection(("127.0.0.1", port))
    else:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port))
        client = socket.create_connection(("::1", port))
    assert _accept_queue_length(second) == 1
    for sock in (client, second):
        sock.close()


def test_an_address_in_use_is_refused_before_gunicorn_starts() -> None:
    held = socket.create_server(("127.0.0.1", 0))
    port = held.getsockname()[1]
    with pytest.raises(UsageError, match=rf"cannot listen on 127.0.0.1:{port}: address in use"):
        _check_free(f"127.0.0.1:{port}")
    held.close()
    _check_free(f"127.0.0.1:{port}")  # free again


def test_serve_refuses_an_address_in_use_before_starting_gunicorn(
    tmp_path: Path, tls: ReloadingContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def started(_arbiter: object) -> None:
        raise AssertionError("gunicorn started")

    monkeypatch.setattr(_Arbiter, "run", started)
    held = socket.create_server(("127.0.0.1", 0))
    port = held.getsockname()[1]
    options = ServerOptions(
        cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key", host="localhost", port=port
    )
    server = WebhookServer(options, tls, WebhookConfig(opa_url="http://127.0.0.1:1"))
    try:
        with pytest.raises(UsageError, match=rf"cannot listen on localhost:{port}: address in use"):
            server.run()  # gunicorn binds localhost as IPv4: that is the address checked
    finally:
        held.close()


def _door(served: list[float], *, busy: Callable[[], bool], wait: float, calm: float) -> _Door:
    """A started door on a listener of its own (127.0.0.1, any port), recording what it
    serves in ``served``; busy wait 0.1 s, pause 0.05 s."""
    listen = listener_factory(socket.create_server(("127.0.0.1", 0), reuse_port=True))
    door = _Door(
        listen(),
        listen=listen,
        handle=lambda client, address, arrived: served.append(arrived),
        spawn=None,
        wait=wait,
        busy=busy,
        busy_wait=0.1,
        pause=0.05,
        calm=calm,
        log=SimpleNamespace(warning=lambda *args: None, error=lambda *args: None),
    )
    door.start()
    return door


def test_a_strained_door_closes_its_listener_until_the_worker_has_been_calm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[float] = []
    reset: list[int] = []
    closed: list[float] = []
    busy = [True]
    door = _door(served, busy=lambda: busy[0], wait=0.5, calm=0.3)
    monkeypatch.setattr(metrics.REFUSED_CONNECTIONS, "inc", lambda count=1: reset.append(count))
    monkeypatch.setattr(metrics.LISTENER_CLOSED_SECONDS, "inc", closed.append)
    address = door.socket.getsockname()
    try:
        taken, behind = _hello(address), _hello(address)
        gevent.sleep(0.01)  # both are in the accept queue; the door takes the first
        assert len(served) == 1 and reset == [1]  # the one behind it was reset with the listener
        with pytest.raises(ConnectionResetError):
            behind.recv(1)
        gevent.sleep(0.2)  # still busy: closed, refused at connect
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address)
        busy[0] = False
        gevent.sleep(0.15)  # calm for less than 0.3 s: still closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address)
        gevent.sleep(0.25)  # calm long enough: open again, connections taken as they come
        assert len(closed) == 1 and 0.5 < closed[0] < 0.8
        calm = [_hello(address) for _ in range(3)]
        gevent.sleep(0.05)
        assert len(served) == 4 and len(closed) == 1
    finally:
        door.close()
    for sock in (taken, behind, *calm):
        sock.close()


def test_a_door_that_shuts_while_draining_old_connections_listens_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A reset puts the door in drain mode (many accepts per wake-up); a fresh connection served
    # in the same wake-up while busy closes the listener inside that loop: the loop must stop
    # there (an accept on the closed socket would make gevent close the server for good), and
    # the door must listen again once calm; nothing restarts accepting while it is closed.
    served: list[float] = []
    busy = [True]
    door = _door(served, busy=lambda: busy[0], wait=0.2, calm=0.1)
    monkeypatch.setattr(metrics.REFUSED_CONNECTIONS, "inc", lambda count=1: None)
    monkeypatch.setattr(metrics.LISTENER_CLOSED_SECONDS, "inc", lambda seconds: None)
    address = door.socket.getsockname()
    try:
        old = _hello(address)
        time.sleep(0.3)  # older than the 0.2 s wait: reset, then drain mode
        fresh = _hello(address)
        gevent.sleep(0.02)
        assert len(served) == 1 and not door.closed
        door._start_accepting_if_started()  # as a freed pool slot or an error timer would
        with pytest.raises(ConnectionRefusedError):  # still closed
            socket.create_connection(address)
        busy[0] = False
        gevent.sleep(0.3)
        _hello(address).close()  # listening again
        gevent.sleep(0.02)
        assert len(served) == 2
    finally:
        door.close()
    for sock in (old, fresh):
        sock.close()


def test_a_door_that_cannot_listen_again_keeps_trying_and_counts_its_closed_time_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reopening fails twice (out of file descriptors, say): the door logs it, tries again every
    # pause and listens once it can. Closed again and then stopped for good, it counts that
    # closed time once (stop() closes twice) and never listens after.
    closed: list[float] = []
    errors: list[tuple[Any, ...]] = []
    failures = [OSError(24, "Too many open files")] * 2
    listen = listener_factory(socket.create_server(("127.0.0.1", 0), reuse_port=True))

    def flaky() -> socket.socket:
        if failures:
            raise failures.pop()
        return listen()

    busy = [True]
    door = _Door(
        listen(),
        listen=flaky,
        handle=lambda client, address, arrived: None,
        spawn=None,
        wait=0.5,
        busy=lambda: busy[0],
        busy_wait=0.1,
        pause=0.05,
        calm=0.05,
        log=SimpleNamespace(warning=lambda *args: None, error=lambda *args: errors.append(args)),
    )
    monkeypatch.setattr(metrics.REFUSED_CONNECTIONS, "inc", lambda count=1: None)
    monkeypatch.setattr(metrics.LISTENER_CLOSED_SECONDS, "inc", closed.append)
    door.start()
    address = door.socket.getsockname()
    _hello(address).close()
    gevent.sleep(0.02)  # taken while busy: closed
    busy[0] = False
    gevent.sleep(0.4)  # two failed tries (one logged), then listening
    assert not failures and len(errors) == 1 and "Too many open files" in str(errors[0])
    assert len(closed) == 1
    busy[0] = True
    _hello(address).close()
    gevent.sleep(0.02)  # closed again
    door.stop()
    assert len(closed) == 2
    gevent.sleep(0.2)
    with pytest.raises(ConnectionRefusedError):  # stopped: never listens again
        socket.create_connection(address)


def test_a_stalled_worker_that_is_not_busy_keeps_listening(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not busy, but the worker did not run for 0.15 s while a connection waited (more than the
    # 0.1 s busy wait, less than the 0.5 s that resets it): it is served, and the listener
    # stays open: a stall alone refuses nothing.
    served: list[float] = []
    door = _door(served, busy=lambda: False, wait=0.5, calm=0.3)
    monkeypatch.setattr(metrics.LISTENER_CLOSED_SECONDS, "inc", lambda seconds: None)
    address = door.socket.getsockname()
    try:
        late = _hello(address)
        time.sleep(0.15)  # the event loop does not run: the connection waits to be accepted
        gevent.sleep(0.01)
        assert len(served) == 1
        after = _hello(address)  # not refused
        gevent.sleep(0.01)
        assert len(served) == 2
    finally:
        door.close()
    for sock in (late, after):
        sock.close()
