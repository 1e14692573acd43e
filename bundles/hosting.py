"""Host the bundle service under gunicorn: one asyncio worker, bounded, optionally over TLS.

A long poll is an idle connection most of its life, so the service runs gunicorn's evented
ASGI worker (asyncio, no extra dependency): 1,000 held polls are 1,000 small objects on one
event loop, not 1,000 threads (see docs/bundles.md for the measured memory). One worker holds
all waiters, so a publish wakes every one of them from one directory watch, and the caps below
are exact. :class:`BundleWorker` adds what gunicorn's ASGI worker leaves open:

- at most ``max_connections`` open connections, counted from the accept (connections still in
  their TLS handshake count); one more is answered ``503`` with ``Retry-After`` and closed
  (over TLS closed unanswered, as no answer could be read before a handshake); long polls are
  capped a little lower, in the application, so uploads still get through;
- a new connection must complete its TLS handshake and then its request headers within
  ``HEADER_SECONDS`` each; a connection idle between requests is closed after
  ``KEEPALIVE_SECONDS``; an upload body must arrive within
  :data:`edgepolicy.bundles.bundle_service.UPLOAD_SECONDS`;
- header lines of at most ``FIELD_LINE_BYTES``;
- the listen backlog is ``backlog`` (asyncio would otherwise lower it to 100);
- TLS from ``cert_file``/``key_file``, reloaded when the files are rotated: each handshake
  switches to the current context of a :class:`edgepolicy.server_tls.ReloadingContext`;
- on SIGTERM, held long polls are answered 304 at once instead of dropped.

It overrides parts of gunicorn's ASGI worker and protocol that are not public API (pinned
gunicorn version; the tests in tests/unit/bundles exercise each of them through a real process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepolicy.bundles.bundle_service import RETRY_AFTER_SECONDS, BundleService
from edgepolicy.bundles.store import BundleStore
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.asgi.protocol import ASGIProtocol  # type: ignore[import-untyped]
from gunicorn.workers.gasgi import ASGIWorker  # type: ignore[import-untyped]

from edgepolicy.errors import BundleError, UsageError
from edgepolicy.server_tls import ReloadingContext, server_context, switching_context

HEADER_SECONDS = 10
FIELD_LINE_BYTES = 4096
KEEPALIVE_SECONDS = 120  # above OPA's long-poll timeout, so its connection is reused
RESERVED_CONNECTIONS = 16  # connections a full set of long polls leaves to uploads and GETs
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Retry-After: " + str(RETRY_AFTER_SECONDS).encode() + b"\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 35\r\n"
    b"Connection: close\r\n\r\n"
    b"too many connections; retry later\r\n"
)


@dataclass(frozen=True)
class ServiceOptions:
    """What the bundle service serves and how it listens."""

    directory: Path
    host: str = "127.0.0.1"
    port: int = 8282
    upload_token: str | None = None
    allow_rollback: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    max_connections: int = 2048
    backlog: int = 2048

    @property
    def max_waiters(self) -> int:
        """Long polls held at once (the connections less a reserve)."""
        return max(1, self.max_connections - RESERVED_CONNECTIONS)


class _CappedListener(socket.socket):
    """The listening socket as asyncio accepts from it: at most ``cap`` accepted connections
    open at once, counted from the accept (so connections still in their TLS handshake count
    too). One more is sent ``busy`` (none over TLS, where it could not be read) and closed.
    """

    def __init__(self, listener: socket.socket, cap: int, busy: bytes | None) -> None:
        super().__init__(listener.family, listener.type, listener.proto, os.dup(listener.fileno()))
        self.cap = cap
        self.busy = busy
        self.accepted: list[socket.socket] = []

    def accept(self) -> tuple[socket.socket, Any]:
        """Return the next connection under the cap; refuse those over it.

        Raises:
            BlockingIOError: no connection waits (as :meth:`socket.socket.accept`).
        """
        while True:
            connection, address = super().accept()
            if len(self.accepted) >= self.cap:  # forget the closed ones only when it matters
                self.accepted = [kept for kept in self.accepted if kept.fileno() != -1]
            if len(self.accepted) < self.cap:
                self.accepted.append(connection)
                return connection, address
            with contextlib.suppress(OSError):
                connection.setblocking(False)
                if self.busy is not None:
                    connection.send(self.busy)
            connection.close()


class _BoundedProtocol(ASGIProtocol):  # type: ignore[misc]
    """gunicorn's ASGI connection with a first-request header timeout."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the connection and start its header timeout."""
        super().connection_made(transport)
        self._header_timer = self.worker.loop.call_later(HEADER_SECONDS, self._keepalive_timeout)

    def _on_headers_complete(self) -> Any:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        return super()._on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the header timer, then let gunicorn clean up."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


class BundleWorker(ASGIWorker):  # type: ignore[misc]
    """gunicorn's ASGI worker serving the bundle service with the bounds described above."""

    async def _serve(self) -> None:
        options: ServiceOptions = self.app.options
        service: BundleService = self.asgi
        watcher = self.loop.create_task(service.store.watch())
        tls = None
        if options.cert_file is not None and options.key_file is not None:
            tls = reloading_tls(options.cert_file, options.key_file)
        busy = None if tls else _BUSY
        for listener in self.sockets:
            server = await self.loop.create_server(
                lambda: _BoundedProtocol(self),
                sock=_CappedListener(listener.sock, options.max_connections, busy),
                ssl=tls,
                ssl_handshake_timeout=HEADER_SECONDS if tls else None,
                backlog=options.backlog,
                start_serving=True,
            )
            self.servers.append(server)
        try:
            while self.alive and self.ppid == os.getppid():
                self.notify()
                await asyncio.sleep(1.0)
        finally:
            watcher.cancel()
            service.store.release()  # held long polls get their 304 now, not a dropped connection
        await self._shutdown()


class _Hosting(BaseApplication):  # type: ignore[misc]
    """gunicorn running :class:`BundleService` with the settings built by :func:`serve`."""

    def __init__(self, options: ServiceOptions, settings: dict[str, Any]) -> None:
        self.options = options
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            self.cfg.set(key, value)

    def load(self) -> BundleService:
        """Build the application (in the worker, after the fork)."""
        return BundleService(
            BundleStore(self.options.directory),
            self.options.upload_token,
            allow_rollback=self.options.allow_rollback,
            max_waiters=self.options.max_waiters,
        )


def reloading_tls(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Return a server SSL context that switches each handshake to the current certificate
    (that of a :class:`ReloadingContext`, which reloads the files when they change).

    Raises:
        UsageError: the certificate or key cannot be loaded.
    """
    return switching_context(cert_file, key_file, ReloadingContext(cert_file, key_file).context)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """Bind the listening socket here, so that port 0 is resolved before gunicorn starts.

    Raises:
        BundleError: the address cannot be bound.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(backlog)
    except OSError as error:
        raise BundleError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    listener.set_inheritable(True)
    return listener


def serve(options: ServiceOptions, announce: Callable[[str], None]) -> None:
    """Serve until gunicorn is stopped (SIGTERM, SIGINT); ``announce`` gets the base URL first.

    Raises:
        UsageError: the directory is missing, or the TLS files cannot be loaded.
        BundleError: the address cannot be bound.
    """
    BundleStore(options.directory)  # fail here, not in a worker that gunicorn restarts
    if (options.cert_file is None) != (options.key_file is None):
        raise UsageError("TLS needs both a certificate and a key")
    if options.cert_file is not None and options.key_file is not None:
        server_context(options.cert_file, options.key_file)
    listener = _listen(options.host, options.port, options.backlog)
    host, port = listener.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    scheme = "https" if options.cert_file else "http"
    settings: dict[str, Any] = {
        "bind": [f"fd://{listener.fileno()}"],
        "workers": 1,
        "worker_class": f"{__name__}.BundleWorker",
        "keepalive": KEEPALIVE_SECONDS,
        "timeout": 30,
        "graceful_timeout": 3,
        "backlog": options.backlog,
        # A header line over this is a 431. It also keeps a Content-Length short enough for
        # gunicorn's int() (over 4,300 digits it raised and dropped the connection unanswered).
        "limit_request_field_size": FIELD_LINE_BYTES,
        "asgi_lifespan": "off",
        # A client that leaves ends its request at once: a held long poll frees its place.
        "asgi_disconnect_grace_period": 0,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "edgepolicy-bundles",
        "control_socket_disable": True,
    }
    if Path("/dev/shm").is_dir():
        settings["worker_tmp_dir"] = "/dev/shm"
    announce(f"{scheme}://{shown_host}:{port}")
    _Hosting(options, settings).run()
