"""Rule descriptions come from the Rego METADATA, read by the real OPA, and reach SARIF."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from edgepolicy.errors import OpaError
from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.output.sarif import INFORMATION_URI
from edgepolicy.rule_catalogue import VERIFY_RULE, RuleCatalogue, RuleInfo, load_rule_catalogue

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA = ROOT / "tests" / "assets" / "schemas" / "sarif-schema-2.1.0.json"
POLICIES_DOC = ROOT / "docs" / "policies.md"
VERIFY_DOC = ROOT / "docs" / "verify.md"


def _library_rule_ids() -> set[str]:
    """Every rule id a finding of the shipped library can carry (its `"rule": "..."` literals)."""
    ids: set[str] = set()
    for path in library_path().rglob("*.rego"):
        if not path.name.endswith("_test.rego"):
            ids |= set(re.findall(r'"rule":\s*"([^"]+)"', path.read_text(encoding="utf-8")))
    return ids


def test_every_rule_of_the_library_is_described_in_its_metadata() -> None:
    catalogue = load_rule_catalogue(find_opa(), library_path())
    rule_ids = _library_rule_ids()
    assert len(rule_ids) >= 9
    assert set(catalogue.ids()) == rule_ids
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', POLICIES_DOC.read_text(encoding="utf-8")))
    for rule_id in rule_ids:
        rule = catalogue.get(rule_id)
        assert rule.summary and rule.description and rule.fix, rule
        assert "\n" not in rule.summary
        # A stable anchor in docs/policies.md, in the repository the driver points to.
        assert rule.help_uri == f"{INFORMATION_URI}/blob/main/docs/policies.md#{rule_id}"
        assert rule_id in anchors


def test_the_verify_rule_is_described_as_the_library_rules_are() -> None:
    assert VERIFY_RULE.id == "edgepolicy.verify"
    assert VERIFY_RULE.summary and VERIFY_RULE.description and VERIFY_RULE.fix
    assert "\n" not in VERIFY_RULE.summary
    assert VERIFY_RULE.id not in _library_rule_ids()  # no Rego rule may take its id
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', VERIFY_DOC.read_text(encoding="utf-8")))
    assert VERIFY_RULE.help_uri == f"{INFORMATION_URI}/blob/main/docs/verify.md#edgepolicy.verify"
    assert VERIFY_RULE.id in anchors


def test_names_are_pascal_case_and_not_the_id() -> None:
    assert RuleInfo("finops.cpu").name == "FinopsCpu"
    assert RuleInfo("finops.limits-missing").name == "FinopsLimitsMissing"
    assert RuleInfo("model.quantization").name == "ModelQuantization"


def test_only_annotations_naming_a_rule_describe_one() -> None:
    inspection = {
        "annotations": [
            {"annotations": {"scope": "package", "title": "Rules"}},
            {"annotations": {"title": "x", "custom": {"summary": "no rule id"}}},
            {
                "annotations": {
                    "description": "Rule description.",
                    "related_resources": [{"ref": "https://example.org/x"}],
                    "custom": {"rule": "team.x", "summary": "  Short\n  text ", "fix": "Fix."},
                }
            },
            {"annotations": {"custom": {"rule": "team.x", "summary": "second: ignored"}}},
            "not an annotation",
        ]
    }
    catalogue = RuleCatalogue.from_inspection(inspection)
    assert catalogue.ids() == ["team.x"]
    assert catalogue.get("team.x") == RuleInfo(
        "team.x", "Short text", "Rule description.", "Fix.", "https://example.org/x"
    )
    assert catalogue.get("team.y") == RuleInfo("team.y")


def test_an_unreadable_policy_is_an_opa_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rego"
    broken.write_text("package x\n\nthis is not rego\n", encoding="utf-8")
    with pytest.raises(OpaError, match=r"opa inspect .*broken\.rego failed"):
        load_rule_catalogue(find_opa(), broken)


def test_check_sarif_describes_the_rules_from_the_metadata() -> None:
    """End to end: `check --output sarif` with the real OPA gives a schema-valid log whose
    rules carry the METADATA descriptions."""
    command = [sys.executable, "-m", "edgepolicy", "check", "--output", "sarif"]
    completed = subprocess.run(
        [*command, "tests/samples/seed-one-above/input"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 1, completed.stderr
    log = json.loads(completed.stdout)
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(log)
    rules = {rule["id"]: rule for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    assert set(rules) == _library_rule_ids()
    gpu = rules["finops.gpu-hours"]
    assert gpu["name"] == "FinopsGpuHours"
    assert gpu["helpUri"].endswith("docs/policies.md#finops.gpu-hours")
    assert "daily-active-hours" in gpu["help"]["markdown"]
    results = log["runs"][0]["results"]
    assert {result["ruleId"] for result in results} >= {"finops.cpu", "finops.gpu-hours"}
    for result in results:
        assert result["message"]["text"].count("Pod ai-workloads/one-above") == 1
