"""The shipped alerting rules through the real promtool: both files are valid rules
(`promtool check rules`) and the unit tests of tests/monitoring pass (`promtool test rules`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"


def _run(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_rules_file_and_prometheusrule_pass_promtool_check(tmp_path: Path, promtool: Path) -> None:
    resource = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    extracted = tmp_path / "prometheusrule.rules.yaml"
    extracted.write_text(yaml.safe_dump(resource["spec"]))

    checked = _run(
        promtool, "check", "rules", str(MONITORING / "edgepolicy-alerts.rules.yaml"), str(extracted)
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rule_unit_tests_pass(promtool: Path) -> None:
    tested = _run(
        promtool, "test", "rules", str(ROOT / "tests/monitoring/edgepolicy-alerts.test.yaml")
    )

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
