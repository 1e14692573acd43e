"""The HTTP bundle service that OPA's bundle plugin polls.

``GET /<path>`` returns the bundle file at that path under the served directory with an
``ETag``; a request whose ``If-None-Match`` lists the current ETag (or is ``*``) gets
``304 Not Modified``.
OPA's long polling is supported: when the request carries ``Prefer: wait=N`` and the client
already has the current bundle, the response is held for up to N seconds and sent as soon as a
new bundle is published into the directory. Responses use the content type
``application/vnd.openpolicyagent.bundles``, which tells OPA that long polling is available.

With an upload token configured, ``PUT /<path>`` with ``Authorization: Bearer <token>`` stores
a bundle (this is what ``edgepolicy bundle publish --to http://...`` talks to). An upload older
than the bundle it would replace (by recorded commit time, :mod:`bundles.rollback`) is refused
with ``409 Conflict`` unless the server allows rollbacks.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bundles.archive import read_tar_gz
from bundles.rollback import replace_bundle_file
from bundles.store import BundleFile, BundleStore
from edgepolicy.errors import BundleError, RollbackError

CONTENT_TYPE = "application/vnd.openpolicyagent.bundles"
MAX_WAIT_SECONDS = 300
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
_WAIT = re.compile(r"(?:^|[;,\s])wait=(\d+)")
_LOG = logging.getLogger("edgepolicy.bundles.server")


def parse_etags(header: str | None) -> frozenset[str]:
    """Return the entity tags listed in an ``If-None-Match`` header (weak tags made strong)."""
    if not header:
        return frozenset()
    tags = (tag.strip() for tag in header.split(","))
    return frozenset(tag[2:] if tag.startswith("W/") else tag for tag in tags if tag)


def parse_wait(header: str | None) -> int | None:
    """Return the seconds of a ``Prefer: wait=N`` header (capped), or None without one."""
    if not header:
        return None
    match = _WAIT.search(header)
    return min(int(match.group(1)), MAX_WAIT_SECONDS) if match else None


class BundleServer(ThreadingHTTPServer):
    """A threading HTTP server holding the bundle store (each long poll holds one thread)."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        store: BundleStore,
        upload_token: str | None,
        allow_rollback: bool = False,
    ):
        """Bind to ``address`` and serve ``store``; accept uploads only with ``upload_token``.

        Uploads that would roll a bundle back are refused unless ``allow_rollback``.
        """
        super().__init__(address, _Handler)
        self.store = store
        self.upload_token = upload_token
        self.allow_rollback = allow_rollback
        self.upload_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: BundleServer
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds a connection may idle between requests (OPA reconnects)
    server_version = "edgepolicy-bundles"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        _LOG.debug("%s %s", self.address_string(), format % args)

    def _path(self) -> str:
        return unquote(urlsplit(self.path).path)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        *,
        etag: str | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        self.send_response(status)
        if etag is not None:
            self.send_header("ETag", etag)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if status != HTTPStatus.NOT_MODIFIED and self.command != "HEAD":
            self.wfile.write(body)

    def _send_bundle(self, bundle: BundleFile) -> None:
        self._send(HTTPStatus.OK, bundle.content, etag=bundle.etag, content_type=CONTENT_TYPE)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        store = self.server.store
        path = self._path()
        current = store.get(path)
        if current is None:
            self._send(HTTPStatus.NOT_FOUND, f"no bundle at {path}\n".encode())
            return
        known = parse_etags(self.headers.get("If-None-Match"))
        if "*" in known:  # RFC 9110 13.1.2: any current representation matches, new ones too
            self._send(HTTPStatus.NOT_MODIFIED, b"", etag=current.etag)
            return
        if current.etag not in known:
            self._send_bundle(current)
            return
        wait = parse_wait(self.headers.get("Prefer"))
        if wait:
            newer = store.wait_for(path, known, wait)
            if newer is not None:
                self._send_bundle(newer)
                return
        self._send(HTTPStatus.NOT_MODIFIED, b"", etag=current.etag)

    def do_PUT(self) -> None:  # noqa: N802 - stdlib naming
        token = self.server.upload_token
        if token is None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"uploads are not enabled\n")
            return
        supplied = self.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            self._send(HTTPStatus.UNAUTHORIZED, b"missing or wrong bearer token\n")
            return
        path = self._path()
        parts = [p for p in path.split("/") if p]
        if not parts or any(p.startswith(".") for p in parts):  # hidden files, ".."
            self._send(HTTPStatus.BAD_REQUEST, f"not a bundle path: {path}\n".encode())
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(HTTPStatus.LENGTH_REQUIRED, b"Content-Length required\n")
            return
        if length > MAX_UPLOAD_BYTES:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"bundle too large\n")
            return
        body = self.rfile.read(length)
        try:
            if ".manifest" not in read_tar_gz(body, source=path):
                raise BundleError(f"{path}: bundle has no .manifest")
            with self.server.upload_lock:
                replace_bundle_file(
                    self.server.store.root.joinpath(*parts),
                    body,
                    allow_rollback=self.server.allow_rollback,
                    where=path,
                )
        except RollbackError as error:
            _LOG.warning("refused %s: %s", path, error)
            self._send(HTTPStatus.CONFLICT, f"{error}\n".encode())
            return
        except BundleError as error:
            self._send(HTTPStatus.BAD_REQUEST, f"{error}\n".encode())
            return
        _LOG.info("stored %s (%d bytes)", path, length)
        self._send(HTTPStatus.CREATED, b"stored\n")


def make_server(
    directory: Path,
    host: str = "127.0.0.1",
    port: int = 8282,
    upload_token: str | None = None,
    *,
    allow_rollback: bool = False,
) -> BundleServer:
    """Return a bound (not yet serving) bundle server for ``directory``.

    Uploads that would roll a bundle back are refused unless ``allow_rollback``.

    Raises:
        UsageError: ``directory`` is not a directory.
        BundleError: the address cannot be bound.
    """
    store = BundleStore(directory)
    try:
        return BundleServer((host, port), store, upload_token, allow_rollback)
    except OSError as error:
        store.close()
        raise BundleError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
