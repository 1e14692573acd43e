"""TLS for our servers (the webhook, the bundle service): a server SSL context that follows
certificate rotation on disk.

cert-manager (or any rotation tool) replaces the certificate and key files in place. gunicorn asks
for an SSL context for every accepted connection (its ``ssl_context`` server hook), so the
:class:`ReloadingContext` below hands out one cached :class:`ssl.SSLContext` and rebuilds it when
the files' identity (inode, size, modification time) changes. Connections already open keep the
context they were accepted with, so a rotation drops no requests; a half-written pair (key and
certificate that do not match yet) is ignored until the files are consistent again.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from edgepolicy.errors import UsageError

_LOG = logging.getLogger("edgepolicy.tls")

FileIdentity = tuple[int, int, int, int]


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Build a server-side SSL context (TLS 1.2 minimum) from a PEM certificate chain and key.

    Raises:
        UsageError: a file is missing or unreadable, or the key does not match the certificate.
    """
    for path in (cert_file, key_file):
        if not path.is_file():
            raise UsageError(f"TLS file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE
    try:
        # A password (empty) so that an encrypted key fails here instead of OpenSSL asking
        # for a passphrase on the terminal, which would stall a server starting or rotating.
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file), password=b"")
    except (ssl.SSLError, OSError) as error:
        raise UsageError(
            f"cannot load TLS certificate {cert_file} with key {key_file}: {error}"
        ) from error
    return context


def check_certificate_file(cert_file: Path) -> None:
    """Check that ``cert_file`` holds a PEM certificate (chain), alone of its key.

    Raises:
        UsageError: the file is missing or unreadable, or holds no PEM certificate.
    """
    try:
        x509.load_pem_x509_certificates(_tls_file(cert_file))
    except ValueError:
        raise UsageError(f"TLS certificate {cert_file} holds no PEM certificate") from None


def check_key_file(key_file: Path) -> None:
    """Check that ``key_file`` holds a PEM private key without a passphrase.

    Raises:
        UsageError: the file is missing or unreadable, holds no PEM private key, or holds an
            encrypted one (no passphrase is ever asked for).
    """
    try:
        serialization.load_pem_private_key(_tls_file(key_file), password=None)
    except TypeError:
        raise UsageError(
            f"TLS key {key_file} is encrypted; give the key without a passphrase"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"TLS key {key_file} holds no PEM private key") from None


def _tls_file(path: Path) -> bytes:
    if not path.is_file():
        raise UsageError(f"TLS file not found: {path}")
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read TLS file {path}: {error.strerror or error}") from error


def _identity(path: Path) -> FileIdentity:
    status = os.stat(path)
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


class ReloadingContext:
    """Hands out a server SSL context, rebuilt when the certificate or key file changes.

    The files are checked at most once per ``check_interval`` seconds, so the per-connection cost
    is a clock read. Safe to call from several threads.
    """

    def __init__(self, cert_file: Path, key_file: Path, *, check_interval: float = 1.0) -> None:
        """Load the initial context.

        Raises:
            UsageError: the initial certificate or key cannot be loaded.
        """
        self._cert_file = cert_file
        self._key_file = key_file
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._context = server_context(cert_file, key_file)
        self._identities = self._current_identities()
        self._checked_at = time.monotonic()

    def _current_identities(self) -> tuple[FileIdentity, FileIdentity]:
        return (_identity(self._cert_file), _identity(self._key_file))

    def context(self) -> ssl.SSLContext:
        """Return the context for a new connection, reloading the files first if they changed."""
        now = time.monotonic()
        if now - self._checked_at < self._check_interval:
            return self._context
        with self._lock:
            if now - self._checked_at >= self._check_interval:
                self._checked_at = now
                self._reload_if_changed()
        return self._context

    def _reload_if_changed(self) -> None:
        try:
            identities = self._current_identities()
        except OSError as error:
            _LOG.warning("TLS files unreadable, keeping the current certificate: %s", error)
            return
        if identities == self._identities:
            return
        try:
            context = server_context(self._cert_file, self._key_file)
        except UsageError as error:
            # Mid-rotation (new certificate, old key): try again on a later connection.
            _LOG.warning("TLS files changed but do not load yet; keeping the old ones: %s", error)
            return
        self._context = context
        self._identities = identities
        _LOG.info("TLS certificate reloaded from %s", self._cert_file)


def switching_context(
    cert_file: Path, key_file: Path, current: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    """Return a server SSL context that switches each handshake to the context ``current()``.

    Its ``sni_callback`` (run for every handshake, with or without SNI) hands the connection
    ``current()``, e.g. :meth:`ReloadingContext.context`, so an evented server that must build
    its listening context itself (asyncio, gevent) still follows certificate rotation.

    Raises:
        UsageError: the certificate or key cannot be loaded.
    """
    front = server_context(cert_file, key_file)

    def switch(connection: Any, _name: str | None, _context: ssl.SSLContext) -> None:
        connection.context = current()

    front.sni_callback = switch
    return front
