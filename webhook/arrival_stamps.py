"""When a request's bytes reached this machine: the kernel's receive timestamp of a connection.

A busy worker notices a readable connection some time after its bytes arrived; under overload
that time grows to seconds, and a deadline counted from when the worker noticed would miss it.
The kernel stamps each received packet (``SO_TIMESTAMPNS``); :meth:`ArrivalStamps.arrived`
reads the stamp of the connection's first unread bytes with ``MSG_PEEK`` (leaving them for
TLS to read) and returns it on :func:`time.monotonic`'s clock.

Bytes already read (TLS-decrypted and buffered, a pipelined request) carry no stamp, nor do
packets received in the moment after the first socket of the machine asked for stamps (the
kernel turns them on shortly after): their caller uses the time it noticed them. A stamp that
cannot be right (later than now, or more than :data:`MAX_WAIT_SECONDS` ago: the wall clock was
stepped) is replaced by now.
"""

from __future__ import annotations

import _socket
import socket
import struct
import time

# Linux's value when the socket module does not name it (it names SO_TIMESTAMPNS only on some
# builds).
SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
# A longer wait than any deadline: a stamp this old is a stepped wall clock.
MAX_WAIT_SECONDS = 60.0
_TIMESPEC = struct.Struct("@ll")  # struct timespec: native longs
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


class ArrivalStamps:
    """Arrival stamps of one connected TCP socket (its file descriptor ``fd``, which stays the
    caller's: :meth:`close` leaves it open)."""

    __slots__ = ("_peek",)

    def __init__(self, fd: int) -> None:
        # The C-level socket type: not the one gevent patches, and never blocking here.
        self._peek: _socket.socket | None = _socket.socket(fileno=fd)
        try:
            self._peek.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:  # not a socket that stamps: every request is stamped when noticed
            self._peek.detach()
            self._peek = None

    def arrived(self) -> float:
        """When the first unread bytes arrived (``time.monotonic()``), or now when no stamp
        can be read."""
        now = time.monotonic()
        if self._peek is None:
            return now
        try:
            _, ancillary, _, _ = self._peek.recvmsg(1, _ANCILLARY_BYTES, _PEEK)
        except OSError:  # nothing unread in the kernel (already read), or the peer is gone
            return now
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                waited: float = time.time() - (seconds + nanoseconds / 1e9)
                if 0.0 <= waited <= MAX_WAIT_SECONDS:
                    return now - waited
        return now

    def close(self) -> None:
        """Stop stamping; the file descriptor stays open."""
        if self._peek is not None:
            self._peek.detach()
            self._peek = None
