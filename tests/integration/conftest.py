"""Shared fixtures for integration tests: a test CA and server certificates (see
webhook_support.py for the helpers behind them) and the real OPA binary."""

from __future__ import annotations

from pathlib import Path

import pytest
from webhook_support import ServerCert, TestCA

from edgepolicy.opa_binary import find_opa


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A test CA for the session."""
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def server_cert(test_ca: TestCA, tmp_path: Path) -> ServerCert:
    """A fresh server certificate for 127.0.0.1 and localhost."""
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert = test_ca.issue(cert_file, key_file)
    return ServerCert(cert_file, key_file, cert)


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    """The real OPA binary (built by `make setup`)."""
    return find_opa()
