"""The four report formats, rendered from a fixed report (no OPA involved)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest

from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Decision, Finding
from edgepolicy.manifests import Manifest
from edgepolicy.output import FORMATS, render
from edgepolicy.output.sarif import artifact_uri

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


def test_registry_feeds_the_output_choices() -> None:
    assert set(FORMATS) == {"text", "json", "junit", "sarif"}


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
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("deploy/web.yaml", "2", "1"),
        ("deploy/ns.yaml", "1", "0"),
    ]
    web = suites[0].findall("testcase")[0]
    assert web.get("name") == "Deployment ai/web (#0)"
    assert web.get("line") == "3"
    failure = web.find("failure")
    assert failure is not None
    assert failure.get("type") == "finops.cpu"
    assert failure.text == (
        "finops.cpu [ai/budget] (container server): Deployment ai/web: 12 cores > 8"
    )
    assert web.findtext("system-out") == f"warn: finops.memory [ai/budget]: {MEMORY.message}"
    namespace = suites[1].find("testcase")
    assert namespace is not None
    assert namespace.get("line") is None
    assert namespace.findtext("system-out", "").startswith("dryrun: finops.idle-shutdown")


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
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "Deployment/ai/web"
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
