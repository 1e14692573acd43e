"""The lean HTTP/1.1 client: framing, keep-alive and the answers it refuses, against a raw
socket server that answers with scripted bytes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from edgepolicy import http_connections
from edgepolicy.http_connections import ConnectionPool, MalformedAnswerError


class _RawServer:
    """Answers each request with the next scripted bytes; closes the connection after an
    answer scripted with ``close=True``. Records each request and the connection it came on."""

    def __init__(self) -> None:
        self.answers: list[tuple[bytes, bool]] = []
        self.requests: list[tuple[int, bytes]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def script(self, raw: bytes, *, close: bool = False) -> None:
        self.answers.append((raw, close))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._connections += 1
            number = self._connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append((number, head + b"\r\n\r\n" + buffer[:length]))
                buffer = buffer[length:]
                raw, close = self.answers.pop(0)
                conn.sendall(raw)
                if close:
                    return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def server() -> Iterator[_RawServer]:
    raw = _RawServer()
    yield raw
    raw.close()


def _pool(server: _RawServer) -> ConnectionPool:
    return ConnectionPool("http", "127.0.0.1", server.port, 4)


def test_request_is_one_http11_message_with_length(server: _RawServer) -> None:
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    answer = _pool(server).request("POST", "/v1/data/x", b'{"input":1}', 5)
    assert (answer.status, answer.reason, answer.body) == (200, "OK", b"{}")
    request = server.requests[0][1]
    assert request.startswith(b"POST /v1/data/x HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in request
    assert b"Content-Length: 11\r\n" in request and request.endswith(b'\r\n\r\n{"input":1}')


def test_get_has_no_body_and_no_length(server: _RawServer) -> None:
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert _pool(server).request("GET", "/health", None, 5).body == b""
    assert b"Content-Length" not in server.requests[0][1]


def test_keep_alive_reuses_one_connection(server: _RawServer) -> None:
    pool = _pool(server)
    for _ in range(3):
        server.script(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc")
        assert pool.request("POST", "/", b"x", 5).body == b"abc"
    assert [number for number, _ in server.requests] == [1, 1, 1]


def test_chunked_body_with_extensions_and_trailers(server: _RawServer) -> None:
    server.script(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    pool = _pool(server)
    assert pool.request("POST", "/", b"x", 5).body == b"Wikipedia in\r\n\r\nchunks."
    assert pool.request("POST", "/", b"x", 5).body == b"ok"  # framing left nothing behind
    assert [number for number, _ in server.requests] == [1, 1]


def test_http10_body_ends_with_the_connection(server: _RawServer) -> None:
    server.script(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"a": 1}', close=True)
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    pool = _pool(server)
    assert pool.request("POST", "/", b"x", 5).body == b'{"a": 1}'
    assert pool.request("POST", "/", b"x", 5).body == b"{}"
    assert [number for number, _ in server.requests] == [1, 2]


def test_connection_close_is_not_reused(server: _RawServer) -> None:
    server.script(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na", close=True)
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    pool = _pool(server)
    assert pool.request("POST", "/", b"x", 5).body == b"a"
    assert pool.request("POST", "/", b"x", 5).body == b"b"
    assert [number for number, _ in server.requests] == [1, 2]


def test_interim_answer_is_skipped(server: _RawServer) -> None:
    server.script(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nn"
    )
    answer = _pool(server).request("POST", "/", b"x", 5)
    assert (answer.status, answer.reason, answer.body) == (404, "Not Found", b"n")


def test_connection_closed_while_idle_is_replaced_once(server: _RawServer) -> None:
    pool = _pool(server)
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", close=True)  # says nothing
    assert pool.request("POST", "/", b"x", 5).body == b"a"
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    threading.Event().wait(0.05)
    assert pool.request("POST", "/", b"x", 5).body == b"b"
    assert [number for number, _ in server.requests] == [1, 2]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header"),
        (b"HTTP/1.1 200 OK\r\n folded: value\r\n\r\n", "header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n", "CRLF"),
    ],
)
def test_unreadable_answers_are_refused(server: _RawServer, raw: bytes, problem: str) -> None:
    server.script(raw, close=True)
    with pytest.raises(MalformedAnswerError, match=problem):
        _pool(server).request("POST", "/", b"x", 5)


def test_answer_cut_short_is_refused(server: _RawServer) -> None:
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True)
    with pytest.raises(MalformedAnswerError, match="closed inside the answer's body"):
        _pool(server).request("POST", "/", b"x", 5)


def test_oversized_answers_are_refused(server: _RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_connections, "MAX_BODY_BYTES", 8)
    monkeypatch.setattr(http_connections, "MAX_HEAD_BYTES", 64)
    pool = _pool(server)
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789", close=True)
    with pytest.raises(MalformedAnswerError, match="body longer than 8 bytes"):
        pool.request("POST", "/", b"x", 5)
    server.script(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n",
        close=True,
    )
    with pytest.raises(MalformedAnswerError, match="body longer than 8 bytes"):
        pool.request("POST", "/", b"x", 5)
    server.script(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 200 + b"\r\n\r\n", close=True)
    with pytest.raises(MalformedAnswerError, match="headers longer than 64 bytes"):
        pool.request("POST", "/", b"x", 5)


def test_a_silent_server_times_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        pool = ConnectionPool("http", "127.0.0.1", listener.getsockname()[1], 1)
        with pytest.raises(TimeoutError):
            pool.request("POST", "/", b"x", 0.2)
    finally:
        listener.close()


@pytest.mark.parametrize(
    "path",
    ["/v1/data/a HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/data/b", "/a\nb", "/a b", "/é", ""],
)
def test_a_path_that_could_end_the_request_line_is_refused(server: _RawServer, path: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        _pool(server).request("GET", path, None, 5)
    assert server.requests == []  # nothing sent


def test_bytes_after_an_answer_close_the_connection(server: _RawServer) -> None:
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n\r\n")
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    pool = _pool(server)
    assert pool.request("POST", "/", b"x", 5).body == b"a"
    assert pool.request("POST", "/", b"x", 5).body == b"b"  # not the stray bytes
    assert [number for number, _ in server.requests] == [1, 2]


def test_chunked_with_a_length_is_read_chunked_and_not_reused(server: _RawServer) -> None:
    server.script(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    server.script(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    pool = _pool(server)
    assert pool.request("POST", "/", b"x", 5).body == b"ok"
    assert pool.request("POST", "/", b"x", 5).body == b"b"
    assert [number for number, _ in server.requests] == [1, 2]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "Transfer"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "switched protocols"),
    ],
)
def test_more_unreadable_answers_are_refused(server: _RawServer, raw: bytes, problem: str) -> None:
    server.script(raw, close=True)
    with pytest.raises(MalformedAnswerError, match=problem):
        _pool(server).request("POST", "/", b"x", 5)
