"""The bundle service's HTTP handling, an ASGI application (hosted by
:mod:`edgepolicy.bundles.hosting`).

``GET /<path>`` returns the bundle file at that path under the served directory with an
``ETag``; a request whose ``If-None-Match`` lists the current ETag (or is ``*``) gets
``304 Not Modified``.
OPA's long polling is supported: when the request carries ``Prefer: wait=N`` and the client
already has the current bundle, the response is held for up to N seconds and sent as soon as a
new bundle is published into the directory. Responses use the content type
``application/vnd.openpolicyagent.bundles``, which tells OPA that long polling is available.
At most ``max_waiters`` requests wait at once; beyond that a long poll is answered
``503 Service Unavailable`` with ``Retry-After``. A waiter whose client leaves is cancelled
at once (by gunicorn).

With an upload token configured, ``PUT /<path>`` with ``Authorization: Bearer <token>`` stores
a bundle (this is what ``edgepolicy bundle publish --to http://...`` talks to). An upload older
than the bundle it would replace (by recorded commit time, :mod:`edgepolicy.bundles.rollback`) is
refused with ``409 Conflict`` unless the server allows rollbacks. A body over 64 MB is refused
with 413 before it is read, one that does not arrive within ``UPLOAD_SECONDS`` with 408, an
archive that expands to over ``MAX_EXPANDED_BYTES`` uncompressed with 400 (before it is held);
a request answered before its body was read ends its connection (gunicorn closes a connection
whose request body was not read to its end, so the body is never taken for a next request).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from edgepolicy.bundles.rollback import SERVICE_OVERRIDE, replace_bundle_file
from edgepolicy.bundles.store import BundleFile, BundleStore, shown

from edgepolicy.bundle_format import MANIFEST, read_tar_gz
from edgepolicy.errors import BundleError, RollbackError

CONTENT_TYPE = "application/vnd.openpolicyagent.bundles"
MAX_WAIT_SECONDS = 300
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_EXPANDED_BYTES = 4 * MAX_UPLOAD_BYTES  # an upload's archive, once uncompressed
UPLOAD_SECONDS = 60  # a whole upload body must arrive within this
RETRY_AFTER_SECONDS = 5
_WAIT = re.compile(r"(?:^|[;,\s])wait=(\d+)")
_LOG = logging.getLogger("edgepolicy.bundles.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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
    return min(int(match.group(1)[:6]), MAX_WAIT_SECONDS) if match else None


class _Refused(Exception):
    """A request answered with an error status (and, if ``close``, its connection ended)."""

    def __init__(self, status: HTTPStatus, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


class BundleService:
    """The ASGI application serving ``store``; uploads only with ``upload_token``.

    Uploads that would roll a bundle back are refused unless ``allow_rollback``.
    """

    def __init__(
        self,
        store: BundleStore,
        upload_token: str | None,
        *,
        allow_rollback: bool = False,
        max_waiters: int = 1000,
    ) -> None:
        """Serve ``store`` with at most ``max_waiters`` long polls held at once."""
        self.store = store
        self.upload_token = upload_token
        self.allow_rollback = allow_rollback
        self.max_waiters = max_waiters
        self.waiters = 0
        self._upload_lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI request (``lifespan`` is acknowledged and ignored)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        try:
            if method in ("GET", "HEAD"):
                await self._get(scope["path"], headers, method, send)
            elif method == "PUT":
                await self._put(scope["path"], headers, receive, send)
            else:
                raise _Refused(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"method {method} not allowed",
                    close=_declares_body(headers),
                )
        except _Refused as refused:
            allowed = b"GET, HEAD, PUT" if self.upload_token else b"GET, HEAD"
            extra = [(b"allow", allowed)] if refused.status == 405 else []
            if refused.status == HTTPStatus.SERVICE_UNAVAILABLE:
                extra.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
            if refused.close:
                extra.append((b"connection", b"close"))
            await _respond(send, refused.status, f"{refused}\n".encode(), headers=extra)

    async def _get(self, path: str, headers: dict[str, str], method: str, send: Send) -> None:
        current = self.store.get(path)
        if current is None:
            raise _Refused(
                HTTPStatus.NOT_FOUND,
                f"no bundle at {shown(path)}",
                close=_declares_body(headers),
            )
        known = parse_etags(headers.get("if-none-match"))
        if "*" in known:  # RFC 9110 13.1.2: any current representation matches, new ones too
            await _respond(send, HTTPStatus.NOT_MODIFIED, b"", etag=current.etag)
            return
        if current.etag not in known:
            await _send_bundle(send, current, method)
            return
        wait = parse_wait(headers.get("prefer"))
        if wait:
            if self.waiters >= self.max_waiters:
                raise _Refused(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"{self.waiters} long polls already wait; retry later",
                )
            self.waiters += 1
            try:
                # A client that leaves cancels this (hosting.py: no disconnect grace).
                newer = await self.store.wait_for(path, known, wait)
            finally:
                self.waiters -= 1
            if newer is not None:
                await _send_bundle(send, newer, method)
                return
            current = self.store.get(path) or current
        await _respond(send, HTTPStatus.NOT_MODIFIED, b"", etag=current.etag)

    async def _put(self, path: str, headers: dict[str, str], receive: Receive, send: Send) -> None:
        token = self.upload_token
        unread = _declares_body(headers)  # refused before reading it: the connection ends
        if token is None:
            raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, "uploads are not enabled", close=unread)
        supplied = headers.get("authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            raise _Refused(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token", close=unread)
        try:
            target = self.store.locate(path)
        except BundleError as error:
            raise _Refused(HTTPStatus.BAD_REQUEST, str(error), close=unread) from error
        body = await _read_body(headers, receive)
        try:
            async with self._upload_lock:  # one upload unpacked and written at a time
                await asyncio.to_thread(
                    _store, self.store.root, target, body, path, self.allow_rollback
                )
        except RollbackError as error:
            _LOG.warning("refused %s: %s", shown(path), error)
            raise _Refused(HTTPStatus.CONFLICT, str(error)) from error
        except BundleError as error:
            raise _Refused(HTTPStatus.BAD_REQUEST, str(error)) from error
        self.store.changed()
        _LOG.info("stored %s (%d bytes)", shown(path), len(body))
        await _respond(send, HTTPStatus.CREATED, b"stored\n")


def _store(root: Path, target: Path, body: bytes, path: str, allow_rollback: bool) -> None:
    """Check that ``body`` is a bundle and write it to ``target`` (off the event loop), never
    outside ``root``, even through a symbolic link made since ``target`` was located.

    Raises:
        RollbackError: it would roll the bundle at ``path`` back.
        BundleError: it is not a bundle with a ``.manifest``, or cannot be written (also when a
            folder on the way has become a symbolic link).
    """
    if MANIFEST not in read_tar_gz(body, source=shown(path), bound=MAX_EXPANDED_BYTES):
        raise BundleError(f"{shown(path)}: bundle has no .manifest")
    replace_bundle_file(
        target,
        body,
        allow_rollback=allow_rollback,
        where=path,
        override=SERVICE_OVERRIDE,
        inside=root,
    )


def _declares_body(headers: dict[str, str]) -> bool:
    """Tell whether a request has a body (which an answer given before reading it leaves)."""
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(headers: dict[str, str], receive: Receive) -> bytes:
    """Read a request body of at most ``MAX_UPLOAD_BYTES`` within ``UPLOAD_SECONDS``.

    gunicorn has already refused a malformed, negative or repeated Content-Length with 400.

    Raises:
        _Refused: 413 (declared or sent too large), 408 (too slow), 400 (client left).
    """
    declared = headers.get("content-length")
    if declared is not None and not declared.isdigit():  # gunicorn refuses these first
        raise _Refused(HTTPStatus.BAD_REQUEST, "invalid Content-Length", close=True)
    digits = (declared or "0").lstrip("0") or "0"  # no int() of a 5,000-digit value
    if len(digits) > len(str(MAX_UPLOAD_BYTES)) or int(digits) > MAX_UPLOAD_BYTES:
        raise _Refused(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"bundle too large: {declared} bytes, at most {MAX_UPLOAD_BYTES}",
            close=True,
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(UPLOAD_SECONDS):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Refused(HTTPStatus.BAD_REQUEST, "request body incomplete", close=True)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise _Refused(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"bundle too large: over {MAX_UPLOAD_BYTES} bytes",
                        close=True,
                    )
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise _Refused(
            HTTPStatus.REQUEST_TIMEOUT,
            f"request body not received within {UPLOAD_SECONDS} s",
            close=True,
        ) from None


async def _send_bundle(send: Send, bundle: BundleFile, method: str) -> None:
    await _respond(
        send,
        HTTPStatus.OK,
        bundle.content,
        etag=bundle.etag,
        content_type=CONTENT_TYPE,
        body=method != "HEAD",
    )


async def _respond(
    send: Send,
    status: HTTPStatus,
    content: bytes,
    *,
    etag: str | None = None,
    content_type: str = "text/plain; charset=utf-8",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bool = True,
) -> None:
    fields = [(b"cache-control", b"no-cache"), *(headers or [])]
    if etag is not None:
        fields.append((b"etag", etag.encode()))
    if status != HTTPStatus.NOT_MODIFIED:
        fields.append((b"content-type", content_type.encode()))
        fields.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": int(status), "headers": fields})
    sent = content if body and status != HTTPStatus.NOT_MODIFIED else b""
    await send({"type": "http.response.body", "body": sent})
