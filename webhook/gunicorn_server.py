"""Serve the webhook with gunicorn over TLS (TLS 1.2 minimum, certificate reloaded on rotation).

gunicorn runs in-process through :class:`WebhookServer`, a ``BaseApplication`` whose settings
come from :class:`ServerOptions`. Workers are :class:`EventedWorker`: gunicorn's gevent worker,
so an idle, slow or stalled connection is a parked greenlet, not a thread (a few kilobytes each;
1,000 of them cost the other clients nothing measurable), with what gunicorn leaves open:

- the TLS handshake, the request headers (from their first byte), the request body and the
  sending of the answer each must complete within their own timeout
  (``ServerOptions.handshake_seconds``, ``header_seconds``, ``body_seconds``,
  ``write_seconds``); a connection idle between requests is closed after the keep-alive
  timeout, and at once when the worker stops; a worker holds at most ``max_connections``
  connections;
- each request is stamped with the time its first bytes reached the machine (the kernel's
  receive timestamp, :mod:`edgepolicy.webhook.arrival_stamps`: a busy worker notices bytes
  late), and the application sees the stamp as ``environ["edgepolicy.arrived"]``, so the
  deadline counts from arrival: a request that waited past it, for the worker or for a decision
  slot, is answered by the failure mode (see
  :class:`edgepolicy.webhook.admission.AdmissionService`). A connection's first request, sent
  with or right after the TLS handshake, counts from the arrival of the connection's TLS hello
  (its wait to be accepted and the handshake count too);
- an overloaded worker refuses new connections (:class:`_Door`). Each worker listens on a
  socket of its own (gunicorn's ``reuse_port``: the kernel spreads new connections over the
  workers' sockets), made once the application is loaded. When a request has waited longer than
  ``WebhookConfig.slot_queue_limit`` for a decision slot (0.1 s), the worker closes its socket
  until no request has waited that long for ``WebhookConfig.connection_wait`` (0.5 s): new
  connections go to the other workers, or, when every socket is closed, the kernel refuses them
  at connect, before any handshake (the connections waiting in the closed socket are reset). A
  connection that waited longer than ``connection_wait`` to be accepted (the worker is too busy
  even to accept) is reset before its TLS handshake whatever the queue. A stall of the machine
  that only delayed connections to a worker with no queue closes and resets nothing. Under
  overload a client such as vegeta or the API server opens a new connection for each request
  its busy ones cannot take; a handshake costs about as much CPU as a decision, and even a
  connection accepted only to be reset costs the client its TLS hello; a refused connect costs
  neither side anything worth counting. The API server applies the webhook's
  ``failurePolicy`` at once (it does not retry a POST); the connections already open are
  served;
- what gunicorn writes for one answer (status line, headers, body) is sent at once, one TLS
  record and one system call (:class:`ResponseBuffer`);
- with ``ServerOptions.probe_port`` the workers also serve ``/healthz``, ``/readyz`` and
  ``/metrics`` (nothing else) in plain HTTP on that port, never refused: the kubelet's probes
  and Prometheus's scrapes then do not depend on an overloaded worker taking new connections.

gevent patches the standard library in gunicorn's master, before anything imports ``ssl``, and
the master imports the model-signature libraries and freezes them before each fork, so the
workers share those pages (:mod:`edgepolicy.webhook.prefork`). Each worker builds its own app
(and its own pooled OPA client) after the fork, so OPA and Kubernetes calls yield to other
connections. It overrides parts of gunicorn's gevent worker that are not public API (pinned
gunicorn and gevent versions; tests/integration/test_webhook_serve.py exercises each through a
real process).
"""

from __future__ import annotations

import errno
import gc
import io
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from edgepolicy.webhook import metrics
from edgepolicy.webhook.app import ARRIVAL_KEY, PROBES_KEY, SERVICE_KEY, create_app
from edgepolicy.webhook.arrival_stamps import SO_TIMESTAMPNS, ArrivalStamps
from edgepolicy.webhook.config import WebhookConfig
from edgepolicy.webhook.prefork import freeze_before_fork
from flask import Flask
from gevent.local import local  # type: ignore[import-untyped]
from gevent.pool import Pool  # type: ignore[import-untyped]
from gevent.server import StreamServer  # type: ignore[import-untyped]
from gevent.socket import wait_read  # type: ignore[import-untyped]
from gunicorn import http, util  # type: ignore[import-untyped]
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from gunicorn.sock import ssl_context as gunicorn_ssl_context  # type: ignore[import-untyped]
from gunicorn.workers.ggevent import GeventWorker  # type: ignore[import-untyped]

from edgepolicy.errors import UsageError
from edgepolicy.server_tls import ReloadingContext, switching_context

# Seconds a worker may stay silent before gunicorn replaces it: far above any request's deadline.
WORKER_SILENCE_SECONDS = 30
# What a client whose headers or body did not arrive in time is told before the connection closes.
_TIMEOUT_BODY = b'{"error":"the request did not arrive in time"}'
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)

# The step of sending an answer (a client that does not read it is closed, not written to).
_ANSWER = "sending the answer"


class _Expired(Exception):
    """A connection did not complete a step (handshake, headers, body, answer) within its
    timeout."""

    def __init__(self, step: str, seconds: float) -> None:
        super().__init__(f"{step} not complete within {seconds:g}s")
        self.step = step


@contextmanager
def _within(seconds: float, step: str) -> Iterator[None]:
    """Interrupt the block (in this greenlet) after ``seconds``.

    Raises:
        _Expired: the block did not finish in time (raised here, outside gunicorn's parser,
            which must not see it as one of its own errors).
    """
    timer = gevent.Timeout(seconds)
    timer.start()
    try:
        yield
    except gevent.Timeout as expired:
        if expired is not timer:
            raise
        raise _Expired(step, seconds) from None
    finally:
        timer.close()


def _has_buffered_request(client: Any, parser: Any) -> bool:
    """Tell whether request bytes are already read (TLS-decrypted or by the parser; a plain
    connection buffers nothing itself)."""
    pending = getattr(client, "pending", None)
    return bool(pending is not None and pending()) or parser.unreader.buf.tell() > 0


class ResponseBuffer:
    """The connection as gunicorn's request handling writes to it: what it writes (status and
    headers, then the body) is gathered and sent at once by :meth:`flush`, one TLS record and
    one system call per answer instead of two. Everything else goes to the connection."""

    __slots__ = ("_connection", "_parts")

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        """Gather ``data``."""
        self._parts.append(data)

    def send(self, data: bytes) -> int:
        """Gather ``data``: all of it is taken."""
        self._parts.append(data)
        return len(data)

    def flush(self) -> None:
        """Send what was gathered."""
        if self._parts:
            data, self._parts = b"".join(self._parts), []
            self._connection.sendall(data)

    def shutdown(self, how: int) -> None:
        """Drop what was gathered and shut the connection down (gunicorn aborts an answer so)."""
        self._parts = []
        self._connection.shutdown(how)

    def close(self) -> None:
        """Drop what was gathered and close the connection."""
        self._parts = []
        self._connection.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


# SO_LINGER with a zero timeout: close() resets the connection instead of a graceful close.
_RESET = struct.pack("ii", 1, 0)
# Connections accepted per wake-up while old ones are being reset (each costs microseconds).
_DRAIN_ACCEPTS = 64
# struct tcp_info (linux/tcp.h): its size up to tcpi_unacked, and that field's offset.
_TCP_INFO_SIZE = 32
_TCP_INFO_UNACKED = 24
# Connections waiting to be accepted, per listener.
_BACKLOG = 2048
# A worker logs each kind of overload warning (resets, closing, reopening) at most this often.
_WARNING_EVERY_SECONDS = 10.0


def listener_factory(listener: Any) -> Callable[[], socket.socket]:
    """A maker of new listeners on ``listener``'s address, as gunicorn makes each worker's own
    (``reuse_port``: ``SO_REUSEPORT``, the kernel spreads new connections over the open
    listeners of an address, and refuses them at once, the client's connect failing, when
    none is open), with ``TCP_NODELAY`` (accepted connections inherit it, as from gunicorn's) and
    the arrival stamps of :mod:`edgepolicy.webhook.arrival_stamps`."""
    family, address = listener.family, listener.getsockname()
    v6only = 0
    if family == socket.AF_INET6:
        v6only = listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)

    def listen() -> socket.socket:
        own = socket.socket(family, socket.SOCK_STREAM)
        try:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                own.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            own.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited, as gunicorn's
            own.bind(address)
            own.listen(_BACKLOG)
            own.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            own.setblocking(False)
        except BaseException:
            own.close()
            raise
        return own

    return listen


class _Door(StreamServer):  # type: ignore[misc]
    """gevent's ``StreamServer`` on a listener of the worker's own, closed while the worker is
    overloaded (``listen()`` makes a new one).

    A new connection whose first bytes arrived (``time.monotonic()``) longer than ``wait``
    seconds ago, or longer than ``busy_wait`` while ``busy()``, is reset at once, with no TLS
    handshake, counted, and logged as a warning (at most every ten seconds, with the count);
    the server then accepts up to :data:`_DRAIN_ACCEPTS` connections per wake-up (the others
    waiting behind it are as old) until it serves one again.

    When the worker is ``busy()`` (which must not block: it runs in the event loop), the server
    serves the connection it took and closes its listener: the kernel gives new connections to
    the other workers' listeners, or refuses them when none is open (the client's connect fails
    at once: no handshake, no CPU on either side). Those waiting in the closed listener are
    reset by the kernel, and counted. Every ``pause`` seconds it looks again, and opens a new
    listener once the worker has not been busy for ``calm`` seconds. The arrival time is passed
    on to the handler.
    """

    def __init__(
        self,
        listener: Any,
        *,
        listen: Callable[[], socket.socket],
        wait: float,
        busy: Callable[[], bool],
        busy_wait: float,
        pause: float,
        calm: float,
        log: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(listener, **kwargs)
        self.max_accept = 1  # one per wake-up: spread over the workers
        self._listen = listen
        self._wait = wait
        self._busy = busy
        self._busy_wait = busy_wait
        self._pause = pause
        self._calm = calm
        self._shut_at: float | None = None  # when the listener was closed (None: it is open)
        self._busy_at = 0.0  # when the worker was last seen busy
        self._log = log
        self._resets = 0  # since the last warning
        self._warned: dict[str, float] = {}  # when each kind of warning was last logged

    def _count_resets(self, count: int, waited: float) -> None:
        metrics.REFUSED_CONNECTIONS.inc(count)
        self._resets += count
        if self._may_warn("reset"):
            self._log.warning(
                "overloaded: reset %d new connection(s), the last after waiting %.2fs to be "
                "accepted (edgepolicy_webhook_refused_connections_total)",
                self._resets,
                waited,
            )
            self._resets = 0

    def _may_warn(self, kind: str) -> bool:
        """Tell whether a warning of ``kind`` may be logged now (one every ten seconds)."""
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARNING_EVERY_SECONDS) < _WARNING_EVERY_SECONDS:
            return False
        self._warned[kind] = now
        return True

    def close(self) -> None:
        """Stop for good (the time the listener was closed is counted)."""
        if self._shut_at is not None:
            metrics.LISTENER_CLOSED_SECONDS.inc(time.monotonic() - self._shut_at)
            self._shut_at = None
        super().close()

    def do_read(self) -> Any:
        """Accept a connection (none while the listener is closed)."""
        return None if self._shut_at is not None else super().do_read()

    def start_accepting(self) -> None:
        """Accept connections again (when the listener is open)."""
        if self._shut_at is None:
            super().start_accepting()

    def do_handle(self, client: Any, address: Any) -> None:
        """Serve ``client``, or reset it when it waited too long for this worker."""
        try:
            stamps = ArrivalStamps(client.fileno())
            try:
                arrived = stamps.arrived()  # of the TLS hello, when the client has sent it
            finally:
                stamps.close()
            now = time.monotonic()
            waited = now - arrived
            busy = self._busy()
            if waited > self._wait or (busy and waited > self._busy_wait):
                self._count_resets(1, waited)
                self.max_accept = _DRAIN_ACCEPTS
                with suppress(OSError):  # already gone
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                client.close()
                return
            self.max_accept = 1
            if busy:
                self._busy_at = now
                self._shut()
        except BaseException:
            client.close()
            raise
        super().do_handle(client, address, arrived)

    def _shut(self) -> None:
        """Close the listener until the worker has not been busy for ``calm`` seconds."""
        self.stop_accepting()
        self._shut_at = time.monotonic()
        waiting = _accept_queue_length(self.socket)
        self.socket.close()  # the kernel resets the connections waiting in it
        if waiting:
            metrics.REFUSED_CONNECTIONS.inc(waiting)
        if self._may_warn("shut"):
            self._log.warning(
                "overloaded: stopped listening until no request waits %.2fs for a decision "
                "slot for %.2fs; %d connection(s) waiting to be accepted were reset "
                "(edgepolicy_webhook_listener_closed_seconds_total)",
                self._busy_wait,
                self._calm,
                waiting,
            )
        gevent.spawn_later(self._pause, self._reopen)

    def _reopen(self) -> None:
        """Open the listener again if the worker has been calm long enough, else look again
        after ``pause`` seconds (whatever fails meanwhile)."""
        if self._shut_at is None or self.closed:  # the server was closed meanwhile
            return
        try:
            now = time.monotonic()
            if self._busy():
                self._busy_at = now
            if now - self._busy_at < self._calm:
                return
            self.socket = self._listen()
            self._make_socket_stdlib(False)  # gevent's unwrapping of a listener, as at start()
            super().start_accepting()
            shut_at, self._shut_at = self._shut_at, None
            metrics.LISTENER_CLOSED_SECONDS.inc(time.monotonic() - shut_at)
        except Exception as error:  # e.g. out of file descriptors, or the port taken meanwhile
            if self._may_warn("reopen"):
                self._log.error("cannot listen on %s again: %s", self.address, error)
        finally:
            if self._shut_at is not None:
                gevent.spawn_later(self._pause, self._reopen)


def _accept_queue_length(listener: socket.socket) -> int:
    """Connections waiting in ``listener``'s accept queue (Linux: ``tcpi_unacked`` of a
    listening socket's ``TCP_INFO``)."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return 0
    return int(struct.unpack_from("I", info, _TCP_INFO_UNACKED)[0])


class EventedWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with handshake, header and body timeouts, a connection cap and
    arrival stamps (see the module's description)."""

    _front: ssl.SSLContext
    _request: Any  # per greenlet: when its request arrived, whether it came to the probe port
    _queue_wait: Callable[[], float]
    _idle: set[Any]  # the greenlets of connections waiting for their next request
    _listeners: list[tuple[Callable[[], socket.socket], Any]]  # how to listen, on which address
    sockets: list[Any]  # gunicorn's listeners for this worker (set aside after the fork)

    def set_aside_listeners(self) -> None:
        """Close the listeners gunicorn made for this worker right after the fork (gunicorn's
        ``post_fork``); :meth:`run` makes them again, so new connections come to a worker once it
        can take them, not while it loads the application."""
        self._listeners = [(listener_factory(s), s.getsockname()) for s in self.sockets]
        for listener in self.sockets:
            listener.close()
        self.sockets = []

    def run(self) -> None:
        """Accept connections on every listener until the worker is told to stop.

        The TLS handshake happens in the connection's greenlet (:meth:`handle`), under its
        timeout, with a context that switches to the reloading one (certificate rotation).
        """
        options: ServerOptions = self.app.options
        self._front = switching_context(
            options.cert_file, options.key_file, lambda: gunicorn_ssl_context(self.cfg)
        )
        servers = []
        self._idle = set()
        for listen, name in self._listeners:
            # Accepted connections inherit SO_TIMESTAMPNS: their hello is stamped from its first
            # byte.
            pool = Pool(self.worker_connections)  # gunicorn's worker_connections: --max-connections
            if name[1] == options.probe_port:
                handle = partial(self.handle_probe, name)
                server = StreamServer(listen(), handle=handle, spawn=pool)
            else:
                server = _Door(
                    listen(),
                    listen=listen,
                    handle=partial(self.handle, name),
                    spawn=pool,
                    wait=self.app.app_config.connection_wait,
                    busy=self._busy,
                    busy_wait=self.app.app_config.slot_queue_limit,
                    pause=self.app.app_config.slot_queue_limit / 2,
                    calm=self.app.app_config.connection_wait,
                    log=self.log,
                )
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            gevent.sleep(1.0)
        for server in servers:
            server.close()  # no new connections; the open ones finish below
        for waiting in list(self._idle):  # kept alive, between requests: closed now
            waiting.kill(block=False)
        ends = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < ends and any(s.pool.free_count() != s.pool.size for s in servers):
            self.notify()
            gevent.sleep(0.1)
        for server in servers:
            server.stop(timeout=1)

    def _busy(self) -> bool:
        """Tell whether a request has waited longer than the slot queue limit for a decision
        slot (the worker then closes its listener)."""
        limit: float = self.app.app_config.slot_queue_limit
        return self._queue_wait() > limit

    def handle(self, listener_name: Any, client: Any, addr: Any, arrived: float) -> None:
        """Serve one connection to ``listener_name`` (the address listened on), whose first
        bytes arrived at ``arrived``: the TLS handshake, then its requests (keep-alive)."""
        options: ServerOptions = self.app.options
        client.setblocking(1)
        try:
            client = self._front.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
            with _within(options.handshake_seconds, "TLS handshake"):
                client.do_handshake()
        except (_Expired, OSError, ValueError) as error:  # ssl.SSLError is an OSError
            self.log.debug("TLS handshake from %s failed: %s", addr, error)
            util.close(client)
            return
        stamps = None
        try:
            stamps = ArrivalStamps(client.fileno())
            first = (arrived, time.monotonic())  # the hello's arrival, the handshake's end
            self._serve_requests(listener_name, client, addr, options, stamps, first)
        finally:
            if stamps is not None:
                stamps.close()
            util.close(client)

    def handle_probe(self, listener_name: Any, client: Any, addr: Any) -> None:
        """Serve one connection to the probe port (``listener_name``): plain HTTP, the probe
        views only."""
        client.setblocking(1)
        self._request.probe = True
        stamps = ArrivalStamps(client.fileno())
        try:
            options: ServerOptions = self.app.options
            self._serve_requests(listener_name, client, addr, options, stamps, None)
        finally:
            stamps.close()
            util.close(client)

    def _serve_requests(
        self,
        listener_name: Any,
        client: Any,
        addr: Any,
        options: ServerOptions,
        stamps: ArrivalStamps,
        first: tuple[float, float] | None,
    ) -> None:
        """Serve the requests of a connection; ``first`` is when its TLS hello arrived and when
        its handshake ended: a first request sent with or right after the handshake (within
        the connection wait) counts from the hello, one sent later from its own arrival."""
        parser = http.get_parser(self.cfg, client, addr)
        req = None
        try:
            while self.alive:
                req = None
                if _has_buffered_request(client, parser):
                    arrived = time.monotonic()  # read with the previous request: no stamp
                else:
                    waiting = gevent.getcurrent()
                    self._idle.add(waiting)  # killed when the worker stops: nothing to finish
                    try:  # idle between requests: costs a parked greenlet, nothing more
                        wait_read(client.fileno(), timeout=self.cfg.keepalive)
                    except TimeoutError:
                        return
                    finally:
                        self._idle.discard(waiting)
                    arrived = stamps.arrived()  # when the bytes came, not when noticed
                if first is not None:
                    hello, handshaken = first
                    if arrived <= handshaken + self.app.app_config.connection_wait:
                        arrived = hello
                    first = None
                with _within(options.header_seconds, "request headers"):
                    req = next(parser)
                with _within(options.body_seconds, "request body"):
                    self._read_body(req, client)
                self._request.arrived = arrived
                answer = ResponseBuffer(client)
                try:
                    self.handle_request(listener_name, req, answer, addr)
                finally:
                    self._request.arrived = None
                    with _within(options.write_seconds, _ANSWER):
                        answer.flush()
        except _Expired as expired:
            self.log.debug("closing the connection from %s: %s", addr, expired)
            if expired.step != _ANSWER:  # a client that does not read is not written to
                with gevent.Timeout(1, False):
                    client.sendall(_TIMED_OUT)
        except (StopIteration, http.errors.NoMoreData):
            return  # the client closed, or the request said so
        except OSError as error:  # ssl.SSLError too: the connection is gone
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, None):
                self.log.debug("connection from %s failed: %s", addr, error)
        except Exception as error:  # a malformed request: gunicorn answers 400 and closes
            if isinstance(error, http.errors.ParseException) and not isinstance(
                error, http.errors.InvalidResponseHeader | http.errors.InvalidResponseHeaderName
            ):  # the client's HTTP, not an answer of ours: logged by gunicorn, counted here
                metrics.REJECTED.labels(reason=metrics.MALFORMED_HTTP).inc()
            self.handle_error(req, client, addr, error)

    def _read_body(self, req: Any, client: Any) -> None:
        """Read the request body now (under the body timeout), at most one byte more than the
        application accepts; a longer body is left unread and its connection closed after the
        answer (the application refuses it with 413)."""
        if req.body is None:
            return
        limit: int = self.app.app_config.max_body_bytes
        declared = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "")
        if declared.isdigit() and int(declared) > limit:
            req.force_close()  # refused unread by the application; nothing to wait for
            return
        if req._expected_100_continue:  # the client waits for this before sending the body
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req._expected_100_continue = False
        data = req.body.read(limit + 1)
        if len(data) > limit:
            req.force_close()
        req.body = io.BytesIO(data)

    def load_wsgi(self) -> None:
        """Load the application and pass each request's arrival time in its environ; a request
        to the probe port goes to the application's probe views.

        What exists once the application is loaded lives as long as the worker: it is moved out
        of the garbage collector's generations (``gc.freeze``), as the master's modules were
        before the fork, so the collector's rare full passes only walk what requests allocate.
        """
        super().load_wsgi()
        gc.collect()
        gc.freeze()
        self._request = local()  # per greenlet: each connection has its own
        request = self._request
        application: Any = getattr(self, "wsgi")  # noqa: B009 - set by gunicorn
        self._queue_wait = application.extensions[SERVICE_KEY].queue_wait
        probes = application.extensions[PROBES_KEY]

        def with_arrival(environ: dict[str, Any], start_response: Any) -> Any:
            if getattr(request, "probe", False):
                return probes(environ, start_response)
            environ[ARRIVAL_KEY] = getattr(request, "arrived", None)
            return application(environ, start_response)

        self.wsgi = with_arrival


@dataclass(frozen=True)
class ServerOptions:
    """Where and how gunicorn listens, and how long a connection may take for each step.

    ``handshake_seconds`` bounds a new connection's TLS handshake, ``header_seconds`` a
    request's line and headers from their first byte, ``body_seconds`` its body from the end of
    its headers, ``write_seconds`` the sending of an answer (a client that does not read it is
    closed); ``keepalive_seconds`` closes a connection idle between requests;
    ``max_connections`` is per worker (more wait in the listen backlog); ``probe_port``, when
    given, serves the probe views in plain HTTP.
    """

    cert_file: Path
    key_file: Path
    host: str = "0.0.0.0"
    port: int = 8443
    workers: int = 2
    keepalive_seconds: int = 75
    handshake_seconds: float = 5.0
    header_seconds: float = 5.0
    body_seconds: float = 5.0
    write_seconds: float = 5.0
    max_connections: int = 4096
    probe_port: int | None = None
    log_level: str = "info"
    access_log: bool = False

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 host in brackets (``[::1]:8443``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def addresses(self) -> list[str]:
        """Every ``host:port`` listened on: the webhook's, then the probe port's."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        probes = [] if self.probe_port is None else [f"{host}:{self.probe_port}"]
        return [self.address, *probes]

    @property
    def url(self) -> str:
        """The base URL the webhook serves (``https://[::1]:8443``)."""
        return f"https://{self.address}"


def gunicorn_settings(options: ServerOptions, tls: ReloadingContext) -> dict[str, Any]:
    """Return the gunicorn settings for ``options`` (TLS through the reloading context)."""

    def ssl_context(_config: Any, _default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return tls.context()

    def post_worker_init(_worker: Any) -> None:
        metrics.mark_worker_alive()

    def post_fork(_arbiter: Any, worker: Any) -> None:
        worker.set_aside_listeners()

    def pre_fork(_arbiter: Any, _worker: Any) -> None:
        freeze_before_fork()  # the worker shares what the master holds (prefork.py)

    def child_exit(_arbiter: Any, worker: Any) -> None:
        metrics.mark_worker_dead(worker.pid)

    settings: dict[str, Any] = {
        "bind": options.addresses,
        "workers": options.workers,
        "worker_class": f"{__name__}.EventedWorker",
        "worker_connections": options.max_connections,
        "backlog": _BACKLOG,
        "reuse_port": True,  # each worker binds listeners of its own (_Door closes them)
        "keepalive": options.keepalive_seconds,
        "timeout": WORKER_SILENCE_SECONDS,
        "graceful_timeout": 10,
        "certfile": str(options.cert_file),
        "keyfile": str(options.key_file),
        "ssl_context": ssl_context,
        "pre_fork": pre_fork,
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "child_exit": child_exit,
        "errorlog": "-",
        "loglevel": options.log_level,
        "accesslog": "-" if options.access_log else None,
        "proc_name": "edgepolicy-webhook",
        "control_socket_disable": True,
        # No proxy stands in front (the webhook terminates TLS itself): no peer, loopback
        # included, may set SCRIPT_NAME, PATH_INFO or X-Forwarded-* (gunicorn trusts loopback by
        # default, and answered a SCRIPT_NAME the path did not start with by HTTP 500).
        "forwarded_allow_ips": "",
    }
    if Path("/dev/shm").is_dir():
        settings["worker_tmp_dir"] = "/dev/shm"
    return settings


def _check_free(address: str) -> None:
    """Fail unless ``host:port`` can be listened on: each worker binds it with
    ``SO_REUSEPORT``, which would share a port that another such listener holds.

    Raises:
        UsageError: the address is in use, or cannot be bound.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if util.is_ipv6(host) else socket.AF_INET  # as gunicorn binds it
    try:
        family, kind, proto, _name, bound = socket.getaddrinfo(
            host, int(port), family, socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(bound)
    except OSError as error:
        reason = "address in use" if error.errno == errno.EADDRINUSE else str(error)
        raise UsageError(f"cannot listen on {address}: {reason}") from error


class _Arbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, reaping only its own children.

    gunicorn reaps with ``os.waitpid(-1, WNOHANG)``, which takes any child that has ended. In
    the master, patched by gevent, that may be the local OPA before gevent's SIGCHLD handling
    has seen it end: gevent's ``subprocess`` then never learns it did, and the supervisor's wait
    for the OPA it replaces never returns. Here that call asks for each worker by its pid.
    """

    def reap_workers(self) -> None:
        """Reap the workers that ended (gunicorn's, with :meth:`_waitpid`)."""
        waitpid = os.waitpid
        os.waitpid = partial(self._waitpid, waitpid)  # nothing else runs meanwhile: no yield
        try:
            super().reap_workers()
        finally:
            os.waitpid = waitpid

    def _waitpid(
        self, waitpid: Callable[[int, int], tuple[int, int]], pid: int, options: int
    ) -> tuple[int, int]:
        if pid != -1:
            return waitpid(pid, options)
        for child in (*self.WORKERS, self.reexec_pid, self.dirty_arbiter_pid):
            if child:
                ended = waitpid(child, options)
                if ended[0]:
                    return ended
        return 0, 0


class WebhookServer(BaseApplication):  # type: ignore[misc]
    """gunicorn serving :func:`edgepolicy.webhook.app.create_app` for ``options`` (read by the
    workers)."""

    def __init__(
        self, options: ServerOptions, tls: ReloadingContext, app_config: WebhookConfig
    ) -> None:
        self.options = options
        self.app_config = app_config
        self._settings = gunicorn_settings(options, tls)
        super().__init__()

    def load_config(self) -> None:
        """Apply the settings to gunicorn's configuration."""
        for key, value in self._settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the application (called in each worker after the fork)."""
        return create_app(self.app_config)

    def run(self) -> None:
        """Run gunicorn's master (:class:`_Arbiter`) until it stops.

        Raises:
            UsageError: an address is in use (by another process, or another ``serve``), or
                gunicorn refused its settings (e.g. an unwritable worker directory).
        """
        for address in self.options.addresses:
            _check_free(address)
        try:
            _Arbiter(self).run()
        except RuntimeError as error:
            raise UsageError(f"gunicorn: {error}") from error
