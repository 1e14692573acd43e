"""Serve the webhook with gunicorn over TLS (TLS 1.2 minimum, certificate reloaded on rotation).

gunicorn runs in-process through :class:`WebhookServer`, a ``BaseApplication`` whose settings
come from :class:`ServerOptions`. Workers are ``gthread`` workers (a few threads each, so a slow
OPA answer does not block other requests, with HTTP keep-alive for the API server's reused
connections), extended by :class:`ArrivalStampingWorker` so the deadline counts from when a
request arrived, not from when a thread got to it. Each worker builds its own app (and its own
pooled OPA client) after the fork.
"""

from __future__ import annotations

import gc
import select
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepolicy.webhook import metrics
from edgepolicy.webhook.app import ARRIVAL_KEY, create_app
from edgepolicy.webhook.config import WebhookConfig
from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.workers import gthread  # type: ignore[import-untyped]
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from edgepolicy.server_tls import ReloadingContext

# Seconds a worker may stay silent before gunicorn replaces it: far above any request's deadline.
WORKER_SILENCE_SECONDS = 30
# How long a thread waits for the first request on a new connection after the TLS handshake.
FIRST_REQUEST_SECONDS = 0.1
_arrival = threading.local()


def _request_waiting(sock: Any, timeout: float) -> bool:
    """Tell whether request bytes arrive on ``sock`` (TLS-decrypted or raw) within ``timeout``."""
    pending = getattr(sock, "pending", None)
    if pending is not None and pending() > 0:
        return True
    poller = select.poll()  # not select.select: descriptors may be numbered above 1024
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


class ArrivalStampingWorker(ThreadWorker):  # type: ignore[misc]
    """A gthread worker that stamps each request with the time it arrived.

    A connection is queued for a thread when it is accepted or becomes readable again (keep-
    alive); under load it can wait there. The stamp reaches the application as
    ``environ["edgepolicy.arrived"]``, so a request that waited past its deadline is answered at
    once (by the failure mode) instead of being decided for a caller that already gave up.
    """

    def enqueue_req(self, conn: Any) -> None:
        """Stamp the connection, then queue it for a thread."""
        conn.edgepolicy_arrived = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        """Serve a connection; a new one only while it has a request to serve.

        gthread handshakes a new connection and then blocks its thread reading the first
        request, however long that takes. Clients such as Go's HTTP transport (the API
        server's) open spare connections and leave them idle after the handshake; each would
        hold one of the few threads, and requests queued behind them went unanswered for
        seconds. Here a new connection whose first request does not follow the handshake
        within ``FIRST_REQUEST_SECONDS`` goes back to the worker's poller (gthread's pending
        connections, closed after the keep-alive timeout) and comes back, newly stamped, when
        its request arrives.
        """
        if not conn.initialized:
            if not (conn.data_ready or conn.wait_for_data(gthread.DEFAULT_WORKER_DATA_TIMEOUT)):
                return gthread._DEFER
            try:
                conn.sock.setblocking(True)
                conn.init()  # the TLS handshake
            except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
                self.log.debug("TLS handshake failed: %s", error)
                conn.sock.close()
                return False
            if not _request_waiting(conn.sock, FIRST_REQUEST_SECONDS):
                return gthread._DEFER
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Handle one request with its arrival time visible to the application."""
        _arrival.value = getattr(conn, "edgepolicy_arrived", None)
        try:
            return super().handle_request(req, conn)
        finally:
            _arrival.value = None

    def load_wsgi(self) -> None:
        """Load the application and pass each request's arrival time in its environ.

        What exists once the application is loaded lives as long as the worker: it is moved
        out of the garbage collector's generations (``gc.freeze``), so the collector's rare
        full passes only walk what requests allocate instead of stopping every thread of the
        worker for milliseconds.
        """
        super().load_wsgi()
        gc.collect()
        gc.freeze()
        application: Any = getattr(self, "wsgi")  # noqa: B009 - set by gunicorn

        def with_arrival(environ: dict[str, Any], start_response: Any) -> Any:
            environ[ARRIVAL_KEY] = getattr(_arrival, "value", None)
            return application(environ, start_response)

        self.wsgi = with_arrival


@dataclass(frozen=True)
class ServerOptions:
    """Where and how gunicorn listens."""

    cert_file: Path
    key_file: Path
    host: str = "0.0.0.0"
    port: int = 8443
    workers: int = 2
    threads: int = 4
    keepalive_seconds: int = 75
    log_level: str = "info"
    access_log: bool = False

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 host in brackets (``[::1]:8443``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

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

    def child_exit(_arbiter: Any, worker: Any) -> None:
        metrics.mark_worker_dead(worker.pid)

    settings: dict[str, Any] = {
        "bind": [options.address],
        "workers": options.workers,
        "worker_class": f"{__name__}.ArrivalStampingWorker",
        "threads": options.threads,
        "keepalive": options.keepalive_seconds,
        "timeout": WORKER_SILENCE_SECONDS,
        "graceful_timeout": 10,
        "certfile": str(options.cert_file),
        "keyfile": str(options.key_file),
        "ssl_context": ssl_context,
        "post_worker_init": post_worker_init,
        "child_exit": child_exit,
        "errorlog": "-",
        "loglevel": options.log_level,
        "accesslog": "-" if options.access_log else None,
        "proc_name": "edgepolicy-webhook",
        "control_socket_disable": True,
    }
    if Path("/dev/shm").is_dir():
        settings["worker_tmp_dir"] = "/dev/shm"
    return settings


class WebhookServer(BaseApplication):  # type: ignore[misc]
    """gunicorn serving :func:`edgepolicy.webhook.app.create_app` with the given settings."""

    def __init__(self, settings: dict[str, Any], app_config: WebhookConfig) -> None:
        self._settings = settings
        self._app_config = app_config
        super().__init__()

    def load_config(self) -> None:
        """Apply the settings to gunicorn's configuration."""
        for key, value in self._settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the application (called in each worker after the fork)."""
        return create_app(self._app_config)
