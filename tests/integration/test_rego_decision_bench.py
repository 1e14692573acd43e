"""bench/rego_decision.py runs to the end (the decision benchmark the docs' numbers come from)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_decision_benchmark_runs_and_prints_the_validation_cost() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "rego_decision.py"),
            "--count",
            "1",
            "--cases",
            "no-policy",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "no-policy" in completed.stdout
    assert "per valid seed policy" in completed.stdout
    assert "per malformed policy" in completed.stdout
