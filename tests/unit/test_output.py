"""The four report formats, rendered from a fixed report (no OPA involved)."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from edgepolicy import __version__
from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Decision, Finding
from edgepolicy.manifests import Manifest
from edgepolicy.output import FORMATS, SUITE_FORMATS, render, render_suite
from edgepolicy.output.sarif import artifact_uri
from edgepolicy.rule_catalogue import RuleCatalogue, RuleInfo
from edgepolicy.suites import (
    CaseOutcome,
    ObjectKey,
    ObjectOutcome,
    PolicyCase,
    SuiteReport,
    Verdict,
)

SCHEMAS = Path(__file__).resolve().parent.parent / "assets" / "schemas"
SARIF_VALIDATOR = jsonschema.Draft4Validator(
    json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
)
JENKINS_XSD = xmlschema.XMLSchema(SCHEMAS / "junit-jenkins-xunit-10.xsd")
ANT_XSD = xmlschema.XMLSchema(SCHEMAS / "junit-ant-windyroad.xsd")

CPU = Finding(
    "finops.cpu", "ai/budget", "finops.cpu: Deployment ai/web: 12 cores > 8", "deny", "server"
)
MEMORY = Finding("finops.memory", "ai/budget", "memory above the budget", "warn")
IDLE = Finding("finops.idle-shutdown", "ai/budget", "idle 45m > 30m", "dryrun")


def _result(path: str, index: int, line: int | None, kind: str, name: str, decision: Decision,
            namespace: str = "ai") -> CheckResult:  # fmt: skip
    obj = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}}
    return CheckResult(Manifest(path, index, line, obj), namespace, decision)


REPORT = CheckReport(
    (
        _result("deploy/web.yaml", 0, 3, "Deployment", "web",
                Decision(allowed=False, violations=(CPU,), warnings=(MEMORY,),
                         policies=("ai/budget",))),
        _result("deploy/web.yaml", 1, 20, "Service", "web", Decision(allowed=True)),
        _result("deploy/ns.yaml", 0, None, "Namespace", "ai",
                Decision(allowed=True, dryrun=(IDLE,)), namespace=""),
    )
)  # fmt: skip


CASE = PolicyCase(
    file=Path("suite/cpu/edgepolicy-test.yaml"),
    inputs=(Path("suite/cpu/input"),),
    data=(),
    namespace="default",
    expected=(
        (ObjectKey("Deployment", None, "web", 9),
         Verdict(False, ("finops.cpu",), ("finops.memory",))),
        (ObjectKey("Service", None, "web", 10), Verdict(False, ("finops.cpu",))),
        (ObjectKey("Pod", None, "gone", 11), Verdict(True)),
    ),
    expected_line=8,
)  # fmt: skip
SUITE_REPORT = SuiteReport(
    (
        CaseOutcome(
            CASE,
            (
                ObjectOutcome("Deployment/web", CASE.expected[0][1], REPORT.results[0]),
                ObjectOutcome("Service/web", CASE.expected[1][1], REPORT.results[1]),
                ObjectOutcome("Namespace/ai", None, REPORT.results[2]),
                ObjectOutcome("Pod/gone", CASE.expected[2][1], None),
            ),
            REPORT,
        ),
        CaseOutcome(
            dataclasses.replace(CASE, file=Path("suite/ok/edgepolicy-test.yaml")),
            (ObjectOutcome("Deployment/web", CASE.expected[0][1], REPORT.results[0]),),
            REPORT,
        ),
    )
)


def test_verify_text_says_what_is_not_as_expected() -> None:
    assert render_suite(SUITE_REPORT, "text").splitlines() == [
        "FAIL suite/cpu (3 of 4 object(s) not as expected)",
        "  Service/web (deploy/web.yaml:20):",
        "    allowed: expected false, got true",
        "    violations: expected [finops.cpu], got []",
        "  Namespace/ai (deploy/ns.yaml):",
        "    no expected verdict for this object (got allowed true, violations [], warnings [], "
        "dryrun [finops.idle-shutdown]): add it to expected in edgepolicy-test.yaml",
        "    dryrun: finops.idle-shutdown [ai/budget] idle 45m > 30m",
        "  Pod/gone:",
        "    expected, but no such object among the inputs",
        "PASS suite/ok (1 object(s) as expected)",
        "",
        "2 case(s) verified: 1 passed, 1 failed",
    ]
    assert SUITE_REPORT.exit_code() == 1


def test_verify_json_has_expected_and_actual_verdicts() -> None:
    document = json.loads(render_suite(SUITE_REPORT, "json"))
    assert document["summary"] == {"cases": 2, "passed": 1, "failed": 1}
    case = document["cases"][0]
    assert (case["case"], case["file"], case["passed"]) == (
        "suite/cpu", "suite/cpu/edgepolicy-test.yaml", False)  # fmt: skip
    assert case["objects"][1] == {
        "object": "Service/web",
        "file": "deploy/web.yaml",
        "line": 20,
        "passed": False,
        "problems": [
            "allowed: expected false, got true",
            "violations: expected [finops.cpu], got []",
        ],
        "expected": {"allowed": False, "violations": ["finops.cpu"], "warnings": [], "dryrun": []},
        "actual": {"allowed": True, "violations": [], "warnings": [], "dryrun": []},
        "findings": [],
    }  # fmt: skip
    assert case["objects"][3]["actual"] is None and case["objects"][3]["file"] is None
    assert case["objects"][0]["passed"] is True
    assert [f["action"] for f in case["objects"][0]["findings"]] == ["deny", "warn"]


def test_verify_junit_has_a_suite_per_case_and_a_case_per_object() -> None:
    root = ElementTree.fromstring(render_suite(SUITE_REPORT, "junit"))
    assert (root.get("name"), root.get("tests"), root.get("failures")) == (
        "edgepolicy verify",
        "5",
        "3",
    )
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("suite/cpu", "4", "3"), ("suite/ok", "1", "0")]  # fmt: skip
    service = suites[0].findall("testcase")[1]
    assert (service.get("name"), service.get("classname")) == ("Service/web", "suite/cpu")
    failure = service.find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "allowed: expected false, got true; violations: expected [finops.cpu], got []"
    )
    assert (failure.text or "").endswith("at deploy/web.yaml:20")  # fmt: skip


def test_verify_sarif_is_valid_with_or_without_failures() -> None:
    passing = SuiteReport(SUITE_REPORT.cases[1:])
    for report in (SUITE_REPORT, passing, SuiteReport(())):
        SARIF_VALIDATOR.validate(json.loads(render_suite(report, "sarif")))
    (run,) = json.loads(render_suite(passing, "sarif"))["runs"]
    assert run["results"] == []
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == ["edgepolicy.verify"]


def test_verify_sarif_has_a_result_per_object_not_as_expected_at_its_case_file() -> None:
    (run,) = json.loads(render_suite(SUITE_REPORT, "sarif"))["runs"]
    (rule,) = run["tool"]["driver"]["rules"]
    # Described as the policy's rules are, from the one catalogue entry.
    assert (rule["id"], rule["name"]) == ("edgepolicy.verify", "EdgepolicyVerify")
    assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
    assert "**How to fix:**" in rule["help"]["markdown"]
    assert rule["helpUri"].endswith("/docs/verify.md#edgepolicy.verify")
    results = run["results"]
    assert [(r["ruleId"], r["ruleIndex"], r["level"]) for r in results] == [
        ("edgepolicy.verify", 0, "error")] * 3  # fmt: skip
    assert [r["message"]["text"] for r in results] == [
        "Service/web in case suite/cpu: allowed: expected false, got true; "
        "violations: expected [finops.cpu], got []",
        "Namespace/ai in case suite/cpu: no expected verdict for this object (got allowed "
        "true, violations [], warnings [], dryrun [finops.idle-shutdown]): add it to expected "
        "in edgepolicy-test.yaml",
        "Pod/gone in case suite/cpu: expected, but no such object among the inputs",
    ]
    # At the case file: the line of the object's expectation, else of `expected:`.
    assert [r["locations"][0]["physicalLocation"] for r in results] == [
        {"artifactLocation": {"uri": "suite/cpu/edgepolicy-test.yaml"},
         "region": {"startLine": line}}
        for line in (10, 8, 11)
    ]  # fmt: skip
    assert results[0]["locations"][0]["logicalLocations"] == [
        {"name": "Service/web", "fullyQualifiedName": "suite/cpu/Service/web", "kind": "resource"}
    ]
    # The object itself, where it is among the inputs.
    assert results[0]["relatedLocations"] == [
        {
            "id": 0,
            "physicalLocation": {
                "artifactLocation": {"uri": "deploy/web.yaml"},
                "region": {"startLine": 20},
            },
            "message": {"text": "Service ai/web"},
        }
    ]
    assert "relatedLocations" not in results[2]
    assert results[0]["properties"] == {
        "case": "suite/cpu",
        "object": "Service/web",
        "expected": {"allowed": False, "violations": ["finops.cpu"], "warnings": [], "dryrun": []},
        "actual": {"allowed": True, "violations": [], "warnings": [], "dryrun": []},
    }
    fingerprints = {r["partialFingerprints"]["edgepolicyVerify/v1"] for r in results}
    assert len(fingerprints) == 3


def test_registry_feeds_the_output_choices() -> None:
    assert set(FORMATS) == {"text", "json", "junit", "sarif"}
    assert set(SUITE_FORMATS) == {"text", "json", "junit", "sarif"}


def test_text() -> None:
    text = render(REPORT, "text")
    assert text.splitlines() == [
        "DENY deploy/web.yaml:3 Deployment ai/web (policies: ai/budget)",
        "  deny: finops.cpu: Deployment ai/web: 12 cores > 8",
        "  warn: finops.memory [ai/budget] memory above the budget",
        "PASS deploy/web.yaml:20 Service ai/web (kind Service has no edgepolicy rules; allowed)",
        "PASS deploy/ns.yaml Namespace ai (kind Namespace has no edgepolicy rules; allowed)",
        "  dryrun: finops.idle-shutdown [ai/budget] idle 45m > 30m",
        "",
        "3 object(s) checked: 1 denied, 1 warned, 2 allowed",
    ]


def test_text_names_the_malformed_policies_that_deny_an_unselected_object() -> None:
    invalid = Finding("policy.invalid", "ai/nosel", "policy.invalid: FinOpsPolicy ai/nosel, "
                      "which may apply to Pod ai/p, is malformed", "deny")  # fmt: skip
    report = CheckReport(
        (
            _result("p.yaml", 0, 1, "Pod", "p", Decision(allowed=False, violations=(invalid,))),
            _result("q.yaml", 0, 1, "Pod", "q", Decision(allowed=True)),
        )
    )
    headlines = render(report, "text").splitlines()[0::2][:2]
    assert headlines == [
        "DENY p.yaml:1 Pod ai/p (no valid policy selects it; judged by ai/nosel)",
        "PASS q.yaml:1 Pod ai/q (no policy selects it)",
    ]


def test_json_has_exactly_the_contract_shape() -> None:
    document = json.loads(render(REPORT, "json"))
    assert document["summary"] == {"objects": 3, "denied": 1, "warned": 1}
    assert document["results"][0] == {
        "file": "deploy/web.yaml",
        "index": 0,
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "ai",
        "name": "web",
        "allowed": False,
        "violations": [{"rule": "finops.cpu", "message": CPU.message, "policy": "ai/budget"}],
        "warnings": [{"rule": "finops.memory", "message": MEMORY.message, "policy": "ai/budget"}],
    }
    assert document["results"][2]["namespace"] == ""


def test_junit_groups_by_file_and_fails_denied_objects() -> None:
    root = ElementTree.fromstring(render(REPORT, "junit"))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "0")
    suites = root.findall("testsuite")
    counts = [(s.get("name"), s.get("tests"), s.get("failures"), s.get("skipped")) for s in suites]
    assert counts == [
        ("deploy/web.yaml", "2", "1", "0"),
        ("deploy/ns.yaml", "1", "0", "0"),
    ]  # fmt: skip
    web = suites[0].findall("testcase")[0]
    assert web.get("name") == "Deployment ai/web (#0)"
    assert web.get("classname") == "deploy/web.yaml"
    failure = web.find("failure")
    assert failure is not None
    assert failure.get("type") == "finops.cpu"
    assert failure.text == (
        "at deploy/web.yaml:3\n"
        "finops.cpu [ai/budget] (container server): Deployment ai/web: 12 cores > 8"
    )
    # Warnings and dry-run findings: in the suite's output, naming the object.
    assert suites[0].findtext("system-out") == (
        f"warn: Deployment ai/web (deploy/web.yaml:3): finops.memory [ai/budget]: {MEMORY.message}"
    )
    assert (
        suites[1]
        .findtext("system-out", "")
        .startswith("dryrun: Namespace ai (deploy/ns.yaml): finops.idle-shutdown")
    )


def test_junit_times_come_from_the_report() -> None:
    started = datetime(2026, 12, 6, 10, 42, 15, 999, tzinfo=UTC)
    report = dataclasses.replace(TIMED_REPORT, started_at=started, seconds=2.5)
    root = ElementTree.fromstring(render(report, "junit"))
    assert root.get("time") == "2.500"
    (suite,) = root.findall("testsuite")
    assert suite.get("time") == "0.375"  # the sum of its cases
    assert suite.get("timestamp") == "2026-12-06T10:42:15"
    assert suite.get("hostname")
    assert [case.get("time") for case in suite.iter("testcase")] == ["0.125", "0.250"]


TIMED_REPORT = CheckReport(
    (
        dataclasses.replace(REPORT.results[0], seconds=0.125),
        dataclasses.replace(REPORT.results[1], seconds=0.25),
    )
)


def _junit_reports() -> list[tuple[str, str]]:
    warned = _result("w.yaml", 0, 1, "Deployment", "w", Decision(allowed=True, warnings=(MEMORY,)))
    control = _result("c.yaml", 0, 1, "Pod", "c\x01", Decision(allowed=False, violations=(
        Finding("finops.cpu", "ai/budget", "value \x1b[31m is odd\x00", "deny"),)))  # fmt: skip
    return [
        ("check", render(REPORT, "junit")),
        ("check, timed", render(TIMED_REPORT, "junit")),
        ("check --fail-on-warn", render(CheckReport((warned,), fail_on_warn=True), "junit")),
        ("check, control characters", render(CheckReport((control,)), "junit")),
        ("check, nothing", render(CheckReport(()), "junit")),
        ("verify", render_suite(SUITE_REPORT, "junit")),
    ]


@pytest.mark.parametrize(("what", "document"), _junit_reports())
def test_junit_is_valid_for_jenkins_and_ant(what: str, document: str) -> None:
    """The Jenkins xUnit schema (what Jenkins enforces) takes the whole document; the Ant
    schema takes it below the root (Ant's testsuites declares no attributes, while Jenkins,
    GitLab and Azure read the totals there)."""
    JENKINS_XSD.validate(document)
    root = ElementTree.fromstring(document)
    assert {"tests", "failures", "errors", "time"} <= set(root.attrib)
    for suite in root.iter("testsuite"):
        assert {"tests", "failures", "errors", "skipped", "time"} <= set(suite.attrib)
    for case in root.iter("testcase"):
        assert "time" in case.attrib
    root.attrib.clear()
    ANT_XSD.validate(ElementTree.tostring(root, encoding="unicode"))


def test_the_junit_schemas_reject_what_the_reports_avoid() -> None:
    """The validation above can fail: the shape of the old report is rejected."""
    old = (
        '<testsuites name="n" tests="1" failures="0" errors="0" skipped="0">'
        '<testsuite name="f" tests="1" failures="0" errors="0" skipped="0">'
        '<testcase name="x" classname="f" file="f" line="3"><system-out>w</system-out></testcase>'
        "</testsuite></testsuites>"
    )
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        JENKINS_XSD.validate(old)
    root = ElementTree.fromstring(old)
    root.attrib.clear()
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        ANT_XSD.validate(ElementTree.tostring(root, encoding="unicode"))


CATALOGUE = RuleCatalogue(
    [
        RuleInfo(
            "finops.cpu",
            summary="Workload CPU limits above maxCPUCores",
            description="Pods x per-pod cpu limit exceeds `costLimits.maxCPUCores`.",
            fix="Lower `resources.limits.cpu`.",
            help_uri="https://example.org/docs/policies.md#finops.cpu",
        ),
        RuleInfo("finops.memory", summary="Memory above maxMemoryGB", description="Memory."),
        RuleInfo("finops.replicas", summary="Replicas out of bounds", fix="Set spec.replicas."),
    ]
)


def test_sarif_is_valid_against_the_sarif_2_1_0_schema() -> None:
    for report in (REPORT, dataclasses.replace(REPORT, rules=CATALOGUE), CheckReport(())):
        SARIF_VALIDATOR.validate(json.loads(render(report, "sarif")))


def test_the_sarif_schema_rejects_a_broken_log() -> None:
    log = json.loads(render(REPORT, "sarif"))
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        SARIF_VALIDATOR.validate(log)


def test_sarif_rules_are_described_for_code_scanning() -> None:
    log = json.loads(render(dataclasses.replace(REPORT, rules=CATALOGUE), "sarif"))
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["informationUri"].startswith("https://")
    assert driver["version"] == driver["semanticVersion"] == __version__
    rules = {rule["id"]: rule for rule in driver["rules"]}
    # Every described rule, and any rule a finding names without a description.
    assert list(rules) == ["finops.cpu", "finops.idle-shutdown", "finops.memory", "finops.replicas"]
    cpu = rules["finops.cpu"]
    assert cpu["name"] == "FinopsCpu"
    assert cpu["shortDescription"] == {"text": "Workload CPU limits above maxCPUCores"}
    assert cpu["fullDescription"] == {
        "text": "Pods x per-pod cpu limit exceeds `costLimits.maxCPUCores`."
    }
    assert cpu["helpUri"] == "https://example.org/docs/policies.md#finops.cpu"
    assert "**How to fix:** Lower `resources.limits.cpu`." in cpu["help"]["markdown"]
    assert "How to fix: Lower `resources.limits.cpu`." in cpu["help"]["text"]
    assert "(https://example.org/docs/policies.md#finops.cpu)" in cpu["help"]["markdown"]
    undescribed = rules["finops.idle-shutdown"]
    assert undescribed["name"] == "FinopsIdleShutdown"
    assert undescribed["shortDescription"]["text"] and "helpUri" not in undescribed
    for rule in rules.values():
        assert rule["name"] != rule["id"]
        assert rule["fullDescription"]["text"] and rule["help"]["markdown"]


def test_sarif_messages_name_the_object_once() -> None:
    log = json.loads(render(REPORT, "sarif"))
    messages = [result["message"]["text"] for result in log["runs"][0]["results"]]
    assert messages == [
        "Deployment ai/web: 12 cores > 8",  # the message names it: not repeated
        "Deployment ai/web: memory above the budget",  # it does not: put in front
        "Namespace ai: idle 45m > 30m",
    ]


def test_sarif_fingerprints_follow_the_object_not_its_line() -> None:
    moved = CheckReport(
        (dataclasses.replace(REPORT.results[0], manifest=Manifest("deploy/web.yaml", 4, 90, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}})),)
    )  # fmt: skip
    first = json.loads(render(REPORT, "sarif"))["runs"][0]["results"]
    again = json.loads(render(moved, "sarif"))["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in first[:2]] == [
        r["partialFingerprints"] for r in again
    ]
    assert again[0]["locations"][0]["physicalLocation"]["region"] == {"startLine": 90}
    fingerprints = {r["partialFingerprints"]["edgepolicyFinding/v1"] for r in first}
    assert len(fingerprints) == len(first)


def test_sarif_levels_rules_and_locations() -> None:
    log = json.loads(render(REPORT, "sarif"))
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "edgepolicy"
    assert [rule["id"] for rule in driver["rules"]] == [
        "finops.cpu",
        "finops.idle-shutdown",
        "finops.memory",
    ]
    assert all(rule["shortDescription"]["text"] for rule in driver["rules"])
    levels = [
        (r["ruleId"], r["level"], driver["rules"][r["ruleIndex"]]["id"]) for r in run["results"]
    ]
    assert levels == [
        ("finops.cpu", "error", "finops.cpu"),
        ("finops.memory", "warning", "finops.memory"),
        ("finops.idle-shutdown", "note", "finops.idle-shutdown"),
    ]
    cpu = run["results"][0]
    location = cpu["locations"][0]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "deploy/web.yaml"},
        "region": {"startLine": 3},
    }
    assert location["logicalLocations"] == [
        {"name": "web", "fullyQualifiedName": "Deployment/ai/web", "kind": "resource"}
    ]
    assert cpu["properties"] == {"policy": "ai/budget", "action": "deny", "container": "server"}
    assert "region" not in run["results"][2]["locations"][0]["physicalLocation"]


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("deploy/web.yaml", "deploy/web.yaml"),
        ("my dir/a#b.yaml", "my%20dir/a%23b.yaml"),
        ("/abs/x.yaml", "file:///abs/x.yaml"),
    ],
)
def test_artifact_uri(path: str, uri: str) -> None:
    assert artifact_uri(path) == uri


def test_junit_fails_warned_objects_with_fail_on_warn() -> None:
    warned = _result("w.yaml", 0, 1, "Deployment", "w", Decision(allowed=True, warnings=(MEMORY,)))
    plain = ElementTree.fromstring(render(CheckReport((warned,)), "junit"))
    strict = ElementTree.fromstring(render(CheckReport((warned,), fail_on_warn=True), "junit"))
    assert plain.get("failures") == "0"
    assert plain.find("./testsuite/testcase/failure") is None
    assert strict.get("failures") == "1"
    failure = strict.find("./testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "warned (--fail-on-warn) by finops.memory"
