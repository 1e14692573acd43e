"""Every policy sample in tests/samples gives its expected verdict through `edgepolicy verify`.

The Rego tests prove the rules; these prove that the Python path (manifest loading, the input
builder, a real OPA, the reports) reaches the verdicts each sample's edgepolicy-test.yaml
expects, so CI and admission agree, and that `verify` itself fails when they do not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_output import SARIF_VALIDATOR

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CASE_FILES = sorted(SAMPLES.glob("*/edgepolicy-test.yaml"))
FINDING_FIELDS = ("violations", "warnings", "dryrun")


def _edgepolicy(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edgepolicy", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def verified() -> dict[str, Any]:
    """`edgepolicy verify --output json tests/samples`, run once for the module."""
    completed = _edgepolicy("verify", "--output", "json", SAMPLES)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def _expected(case_file: Path) -> dict[str, dict[str, Any]]:
    """The case file's verdicts, with the fields verify defaults filled in."""
    document = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    return {
        key: {
            "allowed": verdict["allowed"],
            **{field: sorted(verdict.get(field) or []) for field in FINDING_FIELDS},
        }
        for key, verdict in document["expected"].items()
    }


def test_there_are_samples() -> None:
    assert len(CASE_FILES) >= 10


def test_every_sample_directory_is_a_verify_case() -> None:
    """A sample in another format would be skipped by verify without a word: refuse it."""
    directories = sorted(path for path in SAMPLES.iterdir() if path.is_dir())
    assert [file.parent for file in CASE_FILES] == directories
    assert not list(SAMPLES.glob("*/expected.yaml")), "convert to edgepolicy-test.yaml"


def test_every_sample_passes_verify_with_its_expected_verdicts(verified: dict[str, Any]) -> None:
    cases = {case["case"]: case for case in verified["cases"]}
    assert sorted(cases) == sorted(str(file.parent) for file in CASE_FILES)
    assert verified["summary"] == {"cases": len(CASE_FILES), "passed": len(CASE_FILES), "failed": 0}
    for case_file in CASE_FILES:
        case = cases[str(case_file.parent)]
        # Independently of verify's own comparison: what OPA decided is what the file expects.
        actual = {outcome["object"]: outcome["actual"] for outcome in case["objects"]}
        assert actual == _expected(case_file), case_file
        assert case["passed"] and all(outcome["passed"] for outcome in case["objects"])


def test_every_finding_names_its_rule_and_policy(verified: dict[str, Any]) -> None:
    findings = [f for case in verified["cases"] for o in case["objects"] for f in o["findings"]]
    assert findings
    for finding in findings:
        assert finding["message"].startswith(f"{finding['rule']}: "), finding
        namespace, _, policy_name = finding["policy"].partition("/")
        assert namespace and policy_name, finding
        assert finding["policy"] in finding["message"], finding


@pytest.mark.parametrize("name", ["hpa", "enforcement-actions"])
def test_check_gives_the_verdicts_verify_compared(name: str, verified: dict[str, Any]) -> None:
    """verify decides as `check` does: the same objects in the same order, the same findings."""
    case_dir = SAMPLES / name
    command: list[str | Path] = ["check", "--output", "json"]
    if (case_dir / "data.yaml").is_file():
        command += ["--data", case_dir / "data.yaml"]
    completed = _edgepolicy(*command, case_dir / "input")
    assert completed.returncode in (0, 1), completed.stderr
    checked = json.loads(completed.stdout)["results"]
    (case,) = [case for case in verified["cases"] if case["case"] == str(case_dir)]
    assert len(case["objects"]) == len(checked)
    for outcome, result in zip(case["objects"], checked, strict=True):
        assert outcome["object"] == f"{result['kind']}/{result['name']}"
        assert outcome["file"] == result["file"]
        assert outcome["actual"]["allowed"] == result["allowed"]
        for action, field in (("deny", "violations"), ("warn", "warnings")):
            verified_findings = [
                {key: f[key] for key in ("rule", "message", "policy")}
                for f in outcome["findings"]
                if f["action"] == action
            ]
            assert sorted(verified_findings, key=json.dumps) == sorted(
                result[field], key=json.dumps
            )


def test_a_wrong_expectation_fails_verify_naming_the_case_and_the_object(tmp_path: Path) -> None:
    case = tmp_path / "replicas"
    shutil.copytree(SAMPLES / "replicas", case)
    case_file = case / "edgepolicy-test.yaml"
    document = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    document["expected"]["Deployment/four-replicas"] = {
        "allowed": True,
        "warnings": ["model.quantization"],
    }
    case_file.write_text(yaml.safe_dump(document), encoding="utf-8")

    completed = _edgepolicy("verify", tmp_path)

    assert completed.returncode == 1, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert f"FAIL {case} (1 of 6 object(s) not as expected)" in lines
    assert f"  Deployment/four-replicas ({case}/input/deployments.yaml:18):" in lines
    assert "    allowed: expected true, got false" in lines
    assert "    violations: expected [], got [finops.replicas]" in lines
    assert lines[-1] == "1 case(s) verified: 0 passed, 1 failed"


def test_verify_sarif_of_the_samples_is_valid_and_has_no_results() -> None:
    completed = _edgepolicy("verify", "--output", "sarif", SAMPLES)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    log = json.loads(completed.stdout)
    SARIF_VALIDATOR.validate(log)
    (run,) = log["runs"]
    assert run["results"] == []
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == ["edgepolicy.verify"]


def test_verify_sarif_locates_a_failed_object_at_its_expectation(tmp_path: Path) -> None:
    case = tmp_path / "replicas"
    shutil.copytree(SAMPLES / "replicas", case)
    case_file = case / "edgepolicy-test.yaml"
    document = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    document["expected"]["Deployment/four-replicas"] = {"allowed": True}
    text = yaml.safe_dump(document)
    case_file.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  Deployment/four-replicas:") + 1

    completed = _edgepolicy("verify", "--output", "sarif", tmp_path)

    assert completed.returncode == 1, completed.stdout + completed.stderr
    log = json.loads(completed.stdout)
    SARIF_VALIDATOR.validate(log)
    (result,) = log["runs"][0]["results"]
    assert (result["ruleId"], result["level"]) == ("edgepolicy.verify", "error")
    assert result["message"]["text"] == (
        f"Deployment/four-replicas in case {case}: allowed: expected true, got false; "
        "violations: expected [], got [finops.replicas]; "
        "warnings: expected [], got [model.quantization]"
    )
    assert result["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": case_file.as_uri()},
        "region": {"startLine": line},
    }
    (related,) = result["relatedLocations"]
    assert related["physicalLocation"] == {
        "artifactLocation": {"uri": (case / "input" / "deployments.yaml").as_uri()},
        "region": {"startLine": 18},
    }


def test_an_unlisted_object_and_a_missing_one_fail_verify(tmp_path: Path) -> None:
    case = tmp_path / "seed-compliant"
    shutil.copytree(SAMPLES / "seed-compliant", case)
    case_file = case / "edgepolicy-test.yaml"
    document = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    del document["expected"]["Deployment/inference"]
    document["expected"]["Deployment/gone"] = {"allowed": True}
    case_file.write_text(yaml.safe_dump(document), encoding="utf-8")

    completed = _edgepolicy("verify", "--output", "json", case)

    assert completed.returncode == 1, completed.stderr
    (result,) = json.loads(completed.stdout)["cases"]
    problems = {outcome["object"]: outcome["problems"] for outcome in result["objects"]}
    assert problems["Deployment/gone"] == ["expected, but no such object among the inputs"]
    (unlisted,) = problems["Deployment/inference"]
    assert unlisted.startswith("no expected verdict for this object (got allowed true")


def test_a_malformed_case_file_is_a_usage_error_naming_file_and_field(tmp_path: Path) -> None:
    case = tmp_path / "typo"
    shutil.copytree(SAMPLES / "seed-compliant", case)
    case_file = case / "edgepolicy-test.yaml"
    text = case_file.read_text(encoding="utf-8").replace("violations:", "violation:", 1)
    case_file.write_text(text, encoding="utf-8")

    completed = _edgepolicy("verify", case)
    as_sarif = _edgepolicy("verify", "--output", "sarif", case)

    assert (completed.returncode, as_sarif.returncode) == (2, 2)
    assert completed.stdout == as_sarif.stdout == ""
    assert as_sarif.stderr == completed.stderr
    assert completed.stderr == (
        f"edgepolicy: error: {case_file}: expected.FinOpsPolicy/edge-ai-inference-cost-policy."
        "violation: unknown field (known: allowed, violations, warnings, dryrun)\n"
    )
