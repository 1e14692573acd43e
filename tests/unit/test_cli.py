"""The CLI's last-resort guard: no traceback reaches a user unless they ask for it."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from edgepolicy import cli


def _failing(args: argparse.Namespace) -> int:
    raise RuntimeError("boom")


@pytest.fixture
def broken_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `check` fail with an error edgepolicy did not expect."""
    monkeypatch.setattr("edgepolicy.cli.check_command.run", _failing)


@pytest.mark.usefixtures("broken_check")
def test_unexpected_error_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EDGEPOLICY_DEBUG", raising=False)
    assert cli.main(["check", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepolicy: internal error: RuntimeError: boom")
    assert "Traceback" not in err
    assert "EDGEPOLICY_DEBUG=1" in err
    assert len(err.splitlines()) == 1


@pytest.mark.usefixtures("broken_check")
def test_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEPOLICY_DEBUG", "1")
    assert cli.main(["check", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "edgepolicy: internal error: RuntimeError: boom" in err


def test_building_the_parser_loads_no_metrics_library() -> None:
    # prometheus_client fixes its multiprocess mode when first imported; `serve` sets that mode
    # up after parsing, so no command module may import it at load time (metrics would be lost).
    code = (
        "import sys; from edgepolicy import cli; cli.build_parser(); "
        "sys.exit('prometheus_client' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--handshake-timeout", "0", "--handshake-timeout must be more than 0, got 0.0"),
        ("--header-timeout", "-1", "--header-timeout must be more than 0, got -1.0"),
        ("--body-timeout", "nan", "--body-timeout must be more than 0, got nan"),
        ("--max-connections", "0", "--max-connections must be at least 1, got 0"),
        ("--threads", "0", "--threads must be at least 1, got 0"),
    ],
)
def test_serve_refuses_limits_that_serve_nothing(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--tls-cert", "c", "--tls-key", "k", flag, value]) == 2
    assert message in capsys.readouterr().err
