"""Kernel arrival stamps of a connection's unread bytes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
from edgepolicy.webhook import arrival_stamps
from edgepolicy.webhook.arrival_stamps import ArrivalStamps


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        yield client, server


def test_unread_bytes_are_stamped_when_they_arrived_not_when_asked(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, server = connection
    stamps = ArrivalStamps(server.fileno())
    # The kernel turns stamping on shortly after the first socket of the machine asks for it:
    # wait until a probe byte is stamped (a broken stamp never is, and fails below).
    for _ in range(50):
        client.sendall(b".")
        time.sleep(0.02)
        stamped = stamps.arrived() < time.monotonic() - 0.01
        server.recv(1)
        if stamped:
            break
    before = time.monotonic()
    client.sendall(b"POST /validate HTTP/1.1\r\n")
    sent = time.monotonic()
    time.sleep(0.3)
    asked = time.monotonic()
    arrived = stamps.arrived()
    assert before - 0.005 <= arrived <= sent + 0.005  # while sent, not when asked
    assert asked - arrived >= 0.3
    assert server.recv(100) == b"POST /validate HTTP/1.1\r\n"  # peeked, not consumed
    stamps.close()


def test_without_unread_bytes_the_stamp_is_now(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, server = connection
    stamps = ArrivalStamps(server.fileno())
    client.sendall(b"x")
    time.sleep(0.2)
    server.recv(1)  # read already (e.g. by TLS): nothing left to stamp
    before = time.monotonic()
    assert before <= stamps.arrived() <= time.monotonic()
    stamps.close()


def test_closing_leaves_the_connection_open(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, server = connection
    ArrivalStamps(server.fileno()).close()
    os.fstat(server.fileno())  # still open
    client.sendall(b"still here")
    assert server.recv(100) == b"still here"


def test_a_socket_that_cannot_stamp_is_stamped_when_asked(
    connection: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, server = connection
    monkeypatch.setattr(arrival_stamps, "SO_TIMESTAMPNS", 9999)  # an option no socket has
    stamps = ArrivalStamps(server.fileno())
    client.sendall(b"x")
    time.sleep(0.2)
    before = time.monotonic()
    assert before <= stamps.arrived() <= time.monotonic()
    stamps.close()
    assert server.recv(1) == b"x"
