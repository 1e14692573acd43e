"""Fixtures for the model signing tests (helpers in model_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_fixtures import KeyPair, Pki, make_key_pair, make_pki, write_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model(tmp_path / "model")


@pytest.fixture
def key_pair(tmp_path: Path) -> KeyPair:
    return make_key_pair(tmp_path, "signer")


@pytest.fixture
def other_key_pair(tmp_path: Path) -> KeyPair:
    return make_key_pair(tmp_path, "stranger")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", "Edge")


@pytest.fixture
def other_pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "other-pki", "Elsewhere")
