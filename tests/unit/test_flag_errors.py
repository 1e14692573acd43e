"""The CLI names the flag a library error came from; the library's message stays domain-only."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edgepolicy.cli.flag_errors import from_flag
from edgepolicy.cli.policy_options import opa_binary
from edgepolicy.data_files import load_data_files
from edgepolicy.errors import InputError, OpaNotFoundError, UsageError
from edgepolicy.opa_binary import find_opa


def test_the_flag_prefixes_the_library_message(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(UsageError) as plain:
        load_data_files([missing])
    assert str(plain.value) == f"{missing}: no such data file"
    with pytest.raises(UsageError) as flagged, from_flag("--data"):
        load_data_files([missing])
    assert str(flagged.value) == f"--data {missing}: no such data file"


def test_content_errors_already_name_their_file() -> None:
    with pytest.raises(InputError) as raised, from_flag("--data"):
        raise InputError("not a mapping", path="d.yaml", line=3)
    assert str(raised.value) == "d.yaml:3: not a mapping"
    assert (raised.value.path, raised.value.line) == ("d.yaml", 3)


def test_other_exceptions_pass_unchanged() -> None:
    with pytest.raises(KeyError) as raised, from_flag("--data"):
        raise KeyError("x")
    assert raised.value.args == ("x",)


def test_a_missing_opa_is_named_by_path_and_the_cli_adds_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "opa"
    with pytest.raises(OpaNotFoundError) as plain:
        find_opa(str(missing))
    assert str(plain.value) == f"{missing}: OPA binary not found or not executable"
    with pytest.raises(OpaNotFoundError) as flagged:
        opa_binary(argparse.Namespace(opa=str(missing)))
    assert str(flagged.value) == f"--opa {missing}: OPA binary not found or not executable"
