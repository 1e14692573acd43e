"""The reloading TLS context: TLS 1.2 minimum, rotation picked up, bad files kept out."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from edgepolicy.errors import UsageError
from webhook.tls import ReloadingContext, server_context

KeyPairWriter = Callable[[Path, Path, str], object]


def test_server_context_requires_tls_1_2(tmp_path: Path, write_key_pair: KeyPairWriter) -> None:
    write_key_pair(tmp_path / "c.pem", tmp_path / "k.pem", "one")
    context = server_context(tmp_path / "c.pem", tmp_path / "k.pem")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_missing_or_mismatched_files_are_usage_errors(
    tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    with pytest.raises(UsageError, match="TLS file not found: .*nope.pem"):
        server_context(tmp_path / "nope.pem", tmp_path / "nope.key")
    with pytest.raises(UsageError, match="TLS file not found: .*nope.pem"):
        ReloadingContext(tmp_path / "nope.pem", tmp_path / "nope.key")
    write_key_pair(tmp_path / "a.pem", tmp_path / "a.key", "a")
    write_key_pair(tmp_path / "b.pem", tmp_path / "b.key", "b")
    with pytest.raises(UsageError, match="cannot load TLS certificate"):
        server_context(tmp_path / "a.pem", tmp_path / "b.key")


def test_rotation_is_picked_up_and_a_half_rotated_pair_is_ignored(
    tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_key_pair(cert, key, "first")
    tls = ReloadingContext(cert, key, check_interval=0)
    first = tls.context()
    assert tls.context() is first  # unchanged files: the same context

    write_key_pair(tmp_path / "next.crt", tmp_path / "next.key", "second")
    (tmp_path / "next.crt").replace(cert)  # certificate rotated, key not yet
    assert tls.context() is first
    (tmp_path / "next.key").replace(key)
    second = tls.context()
    assert second is not first
    assert second.minimum_version == ssl.TLSVersion.TLSv1_2


def test_files_are_checked_at_most_once_per_interval(
    tmp_path: Path, write_key_pair: KeyPairWriter
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_key_pair(cert, key, "first")
    tls = ReloadingContext(cert, key, check_interval=3600)
    first = tls.context()
    write_key_pair(cert, key, "second")
    assert tls.context() is first
