"""Pooled keep-alive HTTP/1.1 connections to one server: the lean client of the decision path.

A decision is one small request and one small answer over loopback, so a connection does the
least HTTP/1.1 needs: one ``sendall`` per request (with ``TCP_NODELAY``), the answer read into
one buffer and framed by its Content-Length, by chunked transfer coding or by the end of the
connection (HTTP/1.0). :mod:`http.client` spends about four times the CPU on the same exchange
(~400 µs against ~90 µs measured here), a third of the webhook's own work per admission.

An answer this client cannot read (a status line or header that is not HTTP/1.x, a framing it
does not know, more than :data:`MAX_HEAD_BYTES` of headers or :data:`MAX_BODY_BYTES` of body)
raises :class:`MalformedAnswerError`, and the connection is closed.

Over https the server's certificate is checked against OpenSSL's default CAs (``SSL_CERT_FILE``
and ``SSL_CERT_DIR`` name others) and the host name, ALPN offers only ``http/1.1``, and every
step, the handshake included, ends by the request's deadline.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
_READ_SIZE = 65536
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_T = TypeVar("_T")


class MalformedAnswerError(Exception):
    """The server's answer is not HTTP/1.x that this client can read."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, reason phrase and body."""

    status: int
    reason: str
    body: bytes


class _Connection:
    """One connection and the bytes read from it but not yet used.

    A TLS socket stays non-blocking and each wait for it is bounded by the request's deadline
    (:func:`_tls_call`); a plain one gets the time left as its timeout before each call.
    """

    __slots__ = ("sock", "_buffer", "_tls")

    def __init__(self, sock: socket.socket, *, tls: bool = False) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._tls = tls

    def close(self) -> None:
        self.sock.close()

    def exchange(self, request: bytes, deadline: float) -> tuple[Answer, bool]:
        """Send ``request`` and read its answer; return it and whether the connection may be
        used again.

        Raises:
            ConnectionResetError: the server closed the connection before answering.
            TimeoutError: the deadline passed.
            OSError: the connection failed.
            MalformedAnswerError: the answer cannot be read.
        """
        self._send(request, deadline)
        status, reason, headers, version = self._read_head(deadline)
        while 100 <= status < 200 and status != 101:  # interim answers (100 Continue)
            status, reason, headers, version = self._read_head(deadline)
        if status == 101:
            raise MalformedAnswerError("the server switched protocols (101)")
        keep = version == b"HTTP/1.1" and b"close" not in _tokens(headers.get(b"connection"))
        coding = _tokens(headers.get(b"transfer-encoding"))
        if status in (204, 304):
            body = b""
        elif coding:
            if coding != [b"chunked"]:
                raise MalformedAnswerError(f"unsupported Transfer-Encoding {coding!r}")
            keep = keep and b"content-length" not in headers  # both: a smuggling attempt
            body = self._read_chunked(deadline)
        elif b"content-length" in headers:
            body = self._take(_content_length(headers[b"content-length"]), deadline)
        else:  # HTTP/1.0 style: the body ends with the connection
            body = self._read_to_end(deadline)
            keep = False
        # Bytes after the answer belong to no request of ours: the connection is not reused.
        return Answer(status, reason, body), keep and not self._buffer

    def _settimeout(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)

    def _send(self, data: bytes, deadline: float) -> None:
        if not self._tls:
            self._settimeout(deadline)
            self.sock.sendall(data)
            return
        view = memoryview(data)
        while view:  # a TLS write is whole or not at all (no partial writes in Python's ssl)
            view = view[_tls_call(self.sock, partial(self.sock.send, view), deadline) :]

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; False when the server has closed the connection."""
        if self._tls:
            data = _tls_call(self.sock, partial(self.sock.recv, _READ_SIZE), deadline)
        else:
            self._settimeout(deadline)
            data = self.sock.recv(_READ_SIZE)
        self._buffer += data
        return bool(data)

    def _read_head(self, deadline: float) -> tuple[int, str, dict[bytes, bytes], bytes]:
        """Read a status line and headers: (status, reason, headers by lower-case name,
        HTTP version)."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise MalformedAnswerError(f"answer headers longer than {MAX_HEAD_BYTES} bytes")
            if not self._fill(deadline):
                if not self._buffer:
                    raise ConnectionResetError("the server closed the connection before answering")
                raise MalformedAnswerError("the connection closed inside the answer's headers")
        if end > MAX_HEAD_BYTES:
            raise MalformedAnswerError(f"answer headers longer than {MAX_HEAD_BYTES} bytes")
        lines = bytes(self._buffer[:end]).split(b"\r\n")
        del self._buffer[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise MalformedAnswerError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            name = name.lower()
            if not colon or not name or name != name.strip():
                raise MalformedAnswerError(f"malformed answer header: {line[:80]!r}")
            value = value.strip()
            if name in headers:
                value = headers[name] + b"," + value  # repeated: one comma-separated list
            headers[name] = value
        return int(code), reason.decode("latin-1"), headers, version

    def _take(self, size: int, deadline: float) -> bytes:
        """Return the next ``size`` bytes."""
        if size > MAX_BODY_BYTES:
            raise MalformedAnswerError(f"answer body longer than {MAX_BODY_BYTES} bytes")
        while len(self._buffer) < size:
            if not self._fill(deadline):
                raise MalformedAnswerError("the connection closed inside the answer's body")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _line(self, deadline: float) -> bytes:
        """Return the next CRLF-terminated line (without the CRLF)."""
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise MalformedAnswerError("a chunk-size or trailer line is too long")
            if not self._fill(deadline):
                raise MalformedAnswerError("the connection closed inside a chunked body")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _read_chunked(self, deadline: float) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_field = self._line(deadline).partition(b";")[0].strip()
            if not size_field or not _HEX_DIGITS.issuperset(size_field):
                raise MalformedAnswerError(f"malformed chunk size {size_field[:20]!r}")
            size = int(size_field, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise MalformedAnswerError(f"answer body longer than {MAX_BODY_BYTES} bytes")
            chunks.append(self._take(size, deadline))
            if self._take(2, deadline) != b"\r\n":
                raise MalformedAnswerError("a chunk does not end with CRLF")
        while self._line(deadline):  # trailer fields, up to the empty line
            pass
        return b"".join(chunks)

    def _read_to_end(self, deadline: float) -> bytes:
        while self._fill(deadline):
            if len(self._buffer) > MAX_BODY_BYTES:
                raise MalformedAnswerError(f"answer body longer than {MAX_BODY_BYTES} bytes")
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def _tls_call(sock: socket.socket, call: Callable[[], _T], deadline: float) -> _T:
    """Return what ``call`` (a handshake, read or write on the non-blocking TLS ``sock``)
    returns once it can complete, waiting for the socket until ``deadline`` at most.

    A socket timeout would bound each wait for the server, not the call: gevent's :mod:`ssl`
    waits anew after each partial TLS record, so a server sending slowly held a request far
    beyond its timeout (37 s against 0.5 s for a handshake sent a byte per 50 ms).

    Raises:
        TimeoutError: the deadline passed.
        ssl.SSLError: TLS failed (ssl.SSLCertVerificationError: the server's certificate).
        OSError: the connection failed.
    """
    poller = select.poll()
    while True:
        try:
            return call()
        except ssl.SSLWantReadError:
            events = select.POLLIN
        except ssl.SSLWantWriteError:
            events = select.POLLOUT
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        poller.register(sock, events)  # registering again replaces the events
        if not poller.poll(left * 1000):
            raise TimeoutError("timed out")


def _request_token(value: str, what: str) -> bytes:
    """``value`` as it goes into the request line: printable ASCII without spaces (a CR, LF or
    space would end the line or the token and let the rest pass as another request).

    Raises:
        ValueError: ``value`` holds anything else.
    """
    if not value or not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(f"request {what} must be printable ASCII without spaces: {value[:80]!r}")
    return value.encode("ascii")


def _tokens(value: bytes | None) -> list[bytes]:
    """The comma-separated, case-insensitive tokens of a header value."""
    if not value:
        return []
    return [token.strip().lower() for token in value.split(b",") if token.strip()]


def _content_length(value: bytes) -> int:
    """The one length a Content-Length header gives (repeated identical values allowed)."""
    values = {part.strip() for part in value.split(b",")}
    if len(values) != 1 or not (length := values.pop()).isdigit() or len(length) > 18:
        raise MalformedAnswerError(f"malformed Content-Length {value[:40]!r}")
    return int(length)


class ConnectionPool:
    """Keep-alive connections to one server: at most ``maxsize`` idle ones are kept; more are
    opened when all are busy and closed after use. Safe to share between threads.

    A request that fails on a reused connection because the server closed it while idle is
    sent once more on a fresh one, so only use it for requests without side effects.
    """

    def __init__(self, scheme: str, host: str, port: int | None, maxsize: int) -> None:
        self._tls = ssl.create_default_context() if scheme == "https" else None
        if self._tls is not None:
            self._tls.set_alpn_protocols(["http/1.1"])
        self._host = host
        self._port = port if port is not None else (443 if scheme == "https" else 80)
        authority = f"[{host}]" if ":" in host else host
        if port is not None:
            authority += f":{port}"
        self._host_header = authority.encode("idna")
        self._maxsize = maxsize
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        timeout: float,
    ) -> Answer:
        """Send one request and return the answer, all within about ``timeout`` seconds.

        Raises:
            ValueError: ``method`` or ``path`` is not printable ASCII without spaces.
            OSError: the server is unreachable, too slow, or closed the connection.
            MalformedAnswerError: the answer is not HTTP this client can read.
        """
        deadline = time.monotonic() + timeout
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n" % (
            _request_token(method, "method"),
            _request_token(path, "path"),
            self._host_header,
        )
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        request = head + b"\r\n" + (body or b"")
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is not None:
            try:
                return self._exchange(connection, request, deadline)
            except ConnectionError:
                pass  # closed by the server while idle: try once on a fresh connection
        return self._exchange(self._connect(deadline), request, deadline)

    def _connect(self, deadline: float) -> _Connection:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock = socket.create_connection((self._host, self._port), timeout=left)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(
                    sock, server_hostname=self._host, do_handshake_on_connect=False
                )
                sock.setblocking(False)
                _tls_call(sock, sock.do_handshake, deadline)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock, tls=self._tls is not None)

    def _exchange(self, connection: _Connection, request: bytes, deadline: float) -> Answer:
        try:
            answer, keep = connection.exchange(request, deadline)
        except BaseException:
            connection.close()
            raise
        if keep:
            self._release(connection)
        else:
            connection.close()
        return answer

    def _release(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
