"""Lightweight simulated OPA clients for the fleet benchmark: long polls in raw HTTP/1.1.

Each client holds one connection and polls like OPA's bundle plugin with long polling on
(``If-None-Match`` with the ETag it has, ``Prefer: wait=N``): a 304 makes it ask again, a 200
is a new bundle (its arrival time is recorded under the new ETag). All clients run on one
asyncio event loop in a thread of their own, so a thousand of them cost the benchmark little;
:class:`PollerProcess` runs them in a process of their own, so that the benchmark's other work
(building bundles, asking the sidecars) does not delay their clocks.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from typing import Any

CONNECT_BATCH = 100  # connections opened at once while the clients start


class _PollingClient(asyncio.Protocol):
    """One client: a long poll on its connection, asked again as soon as it is answered.

    A protocol rather than streams, so that reading an answer costs a callback and a few byte
    operations: the clients' own CPU would otherwise delay their clocks (on the benchmark's
    machine) as much as the service does.
    """

    def __init__(self, pollers: Pollers, etag: bytes) -> None:
        self.pollers = pollers
        self.etag = etag
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._ask()

    def _ask(self) -> None:
        assert self.transport is not None
        self.transport.write(self.pollers.request_head + self.etag + self.pollers.request_tail)
        self.pollers.outstanding += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            status = int(head[9:12])
            length = 0
            if status != 304:
                at = head.find(b"\r\ncontent-length:")
                length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return  # the rest of the body is still on its way
            del self.buffer[: end + 4 + length]
            self.pollers.outstanding -= 1
            if status == 200:
                at = head.find(b"\r\netag:")
                # Read from the lowered head: the service's ETags are quoted lowercase hex.
                self.etag = head[at + 7 : head.find(b"\r\n", at + 2)].strip()
                self.pollers.arrivals[self.etag.decode("latin-1")].append(time.time())
                self._ask()
            elif status == 304:
                self._ask()
            else:
                self.pollers.errors.append(f"HTTP {status}")
                asyncio.get_running_loop().call_later(1, self._ask)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.pollers.stopping:
            self.pollers.errors.append(repr(exc) if exc else "connection closed by the service")
        if not self.closed.done():
            self.closed.set_result(None)


class Pollers:
    """``count`` long-polling clients of ``http://host:port/path``."""

    def __init__(self, host: str, port: int, path: str, count: int, wait_seconds: int) -> None:
        self.host, self.port, self.path = host, port, path
        self.count = count
        self.wait_seconds = wait_seconds
        self.request_head = f"GET {path} HTTP/1.1\r\nHost: bench\r\nIf-None-Match: ".encode()
        self.request_tail = f"\r\nPrefer: wait={wait_seconds}\r\n\r\n".encode()
        self.outstanding = 0  # requests sent and not yet answered
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._clients: list[_PollingClient] = []

    def start(self, etag: str) -> None:
        """Connect every client, each already holding the bundle with ``etag``."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(etag), self._loop).result(120)

    def wait_until_all_waiting(self, timeout: float) -> None:
        """Return once every client has a long poll outstanding.

        Raises:
            TimeoutError: not all are waiting within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self.outstanding < self.count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.outstanding}/{self.count} waiting; {self.errors[:3]}")
            time.sleep(0.05)

    def received(self, etag: str) -> list[float]:
        """Return the times (``time.time()``) at which clients received the bundle ``etag``."""
        return list(self.arrivals.get(etag, []))

    def stop(self) -> None:
        """Close every connection and end the thread."""

        async def close() -> None:
            self.stopping = True
            for client in self._clients:
                if client.transport is not None:
                    client.transport.close()
            await asyncio.gather(*(client.closed for client in self._clients))

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self, etag: str) -> None:
        loop = asyncio.get_running_loop()
        for first in range(0, self.count, CONNECT_BATCH):
            batch = range(first, min(first + CONNECT_BATCH, self.count))
            connections = await asyncio.gather(
                *(
                    loop.create_connection(
                        lambda: _PollingClient(self, etag.encode("latin-1")), self.host, self.port
                    )
                    for _ in batch
                )
            )
            self._clients += [client for _, client in connections]


class PollerProcess:
    """:class:`Pollers` in a child process, driven over a pipe (same methods)."""

    def __init__(self, host: str, port: int, path: str, count: int, wait_seconds: int) -> None:
        self.count = count
        self._pipe, child = multiprocessing.Pipe()
        context = multiprocessing.get_context("fork")
        self._process = context.Process(
            target=_serve_commands, args=(child, host, port, path, count, wait_seconds)
        )

    def _ask(self, *command: Any) -> Any:
        self._pipe.send(command)
        answer = self._pipe.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def start(self, etag: str) -> None:
        """Start the process and connect every client, each holding the bundle ``etag``."""
        self._process.start()
        self._ask("start", etag)

    def wait_until_all_waiting(self, timeout: float) -> None:
        """See :meth:`Pollers.wait_until_all_waiting`."""
        self._ask("wait", timeout)

    def received(self, etag: str) -> list[float]:
        """See :meth:`Pollers.received`."""
        return list(self._ask("received", etag))

    @property
    def errors(self) -> list[str]:
        """What went wrong for clients so far."""
        return list(self._ask("errors"))

    def stop(self) -> None:
        """Close the clients and end the process."""
        self._ask("stop")
        self._process.join(30)


def _serve_commands(
    pipe: Connection, host: str, port: int, path: str, count: int, wait_seconds: int
) -> None:
    pollers = Pollers(host, port, path, count, wait_seconds)
    while True:
        command, *args = pipe.recv()
        try:
            if command == "start":
                pollers.start(*args)
                answer: Any = None
            elif command == "wait":
                pollers.wait_until_all_waiting(*args)
                answer = None
            elif command == "received":
                answer = pollers.received(*args)
            elif command == "errors":
                answer = pollers.errors
            else:
                pollers.stop()
                pipe.send(None)
                return
        except Exception as error:  # noqa: BLE001 - handed to the parent to raise
            answer = error
        pipe.send(answer)
