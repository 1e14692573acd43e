"""The ``--tls-cert``/``--tls-key`` pair of the serving commands, checked before anything
is served so that a bad file is named with its flag."""

from __future__ import annotations

from pathlib import Path

from edgepolicy.cli.flag_errors import from_flag
from edgepolicy.server_tls import check_certificate_file, check_key_file, server_context


def check_tls_flags(cert_file: Path, key_file: Path) -> None:
    """Check that the certificate and key files can serve TLS together.

    Raises:
        UsageError: naming ``--tls-cert``, ``--tls-key`` or both (a key that is not the
            certificate's) and the file.
    """
    with from_flag("--tls-cert"):
        check_certificate_file(cert_file)
    with from_flag("--tls-key"):
        check_key_file(key_file)
    with from_flag("--tls-cert/--tls-key"):
        server_context(cert_file, key_file)
