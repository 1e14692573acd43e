"""Fixtures of the bundle tests: keys, a policy repository and a stand-in Rego library."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from policyrepo import write_key

from edgepolicy.opa_binary import find_opa

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="session")
def rsa_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An RSA-2048 signing key (RS256)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return write_key(tmp_path_factory.mktemp("keys") / "rsa.pem", key)


@pytest.fixture(scope="session")
def ec_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An EC P-256 signing key (ES256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return write_key(tmp_path_factory.mktemp("keys") / "ec.pem", key)


@pytest.fixture(scope="session")
def opa() -> Path:
    """The real OPA binary (the builder validates with it)."""
    return find_opa()


@pytest.fixture
def stand_in_library(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the builder ship the small stand-in library in assets/ instead of rego/."""
    library = ASSETS / "library"
    monkeypatch.setattr("edgepolicy.bundles.builder.library_path", lambda: library)
    yield library
