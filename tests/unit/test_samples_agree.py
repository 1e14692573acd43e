"""Every policy sample in tests/samples gives its expected verdict through `edgepolicy check`.

The Rego tests prove the rules; these prove that the Python path (manifest loading, the input
builder, a real OPA, the JSON report) reaches the same verdicts, so CI and admission agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CASES = sorted(path.name for path in SAMPLES.iterdir() if (path / "expected.yaml").is_file())


def _check(case: Path) -> tuple[int, dict[str, Any]]:
    """Run `edgepolicy check --output json` on a case and return its exit code and report."""
    command = [sys.executable, "-m", "edgepolicy", "check", "--output", "json"]
    if (case / "data.yaml").is_file():
        command += ["--data", str(case / "data.yaml")]
    command.append(str(case / "input"))
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode in (0, 1), (
        f"edgepolicy check failed on {case.name} (exit {completed.returncode}): {completed.stderr}"
    )
    return completed.returncode, json.loads(completed.stdout)


def _verdicts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Reduce the report to the shape of expected.yaml: `Kind/name` -> verdict."""
    verdicts: dict[str, dict[str, Any]] = {}
    for result in report["results"]:
        key = f"{result['kind']}/{result['name']}"
        assert key not in verdicts, f"two objects named {key} in one sample"
        verdicts[key] = {
            "allowed": result["allowed"],
            "violations": sorted(finding["rule"] for finding in result["violations"]),
            "warnings": sorted(finding["rule"] for finding in result["warnings"]),
        }
    return verdicts


def test_there_are_samples() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("name", CASES)
def test_sample_verdicts(name: str) -> None:
    case = SAMPLES / name
    expected = yaml.safe_load((case / "expected.yaml").read_text(encoding="utf-8"))
    for verdict in expected.values():
        verdict["violations"] = sorted(verdict["violations"])
        verdict["warnings"] = sorted(verdict["warnings"])

    exit_code, report = _check(case)

    assert _verdicts(report) == expected
    any_denied = any(not verdict["allowed"] for verdict in expected.values())
    assert exit_code == (1 if any_denied else 0)
    for result in report["results"]:
        for finding in result["violations"] + result["warnings"]:
            assert finding["message"].startswith(f"{finding['rule']}: "), finding
            namespace, _, policy_name = finding["policy"].partition("/")
            assert namespace and policy_name, finding
            assert finding["policy"] in finding["message"], finding
