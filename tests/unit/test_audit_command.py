"""`edgepolicy audit`'s command line: bad usage is refused in one line (exit 2) before any
cluster or OPA is reached (runs against the real API server: tests/e2e/test_audit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepolicy.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "soon"], "--interval 'soon': expected a duration such as 60s"),
        (
            ["--interval", "60s", "--event-refresh", "0s"],
            "--event-refresh '0s': must be at least 1s",
        ),
        (["--opa-url", "http://127.0.0.1:8181", "--policy", "."], "with --opa-url the policy"),
        (["--page-size", "0"], "--page-size must be at least 1, got 0"),
        (["--violations-limit", "-1"], "--violations-limit must be 0 or more"),
        (["--metrics-port", "70000"], "--metrics-port must be between 1 and 65535"),
        (
            ["--kubeconfig", "/nonexistent/kubeconfig"],
            "--kubeconfig /nonexistent/kubeconfig: no such file",
        ),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["audit", *args])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1, err


def test_no_cluster_at_all_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    code = main(["audit"])

    assert code == 2
    assert "no cluster to audit: give --kubeconfig FILE" in capsys.readouterr().err
