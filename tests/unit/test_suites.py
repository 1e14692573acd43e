"""Reading policy test cases (edgepolicy-test.yaml) and comparing verdicts, without OPA."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepolicy import suites
from edgepolicy.checking import CheckReport, CheckResult, PolicySource
from edgepolicy.decision import Decision, Finding
from edgepolicy.errors import InputError, UsageError
from edgepolicy.manifests import Manifest
from edgepolicy.suites import CASE_FILE, ObjectKey, Verdict, compare, find_cases, load_case

HEADER = "apiVersion: edgepolicy.apexlogic.com/v1alpha1\nkind: PolicyTest\n"
GOOD = (
    HEADER
    + """\
description: one deployment over budget
inputs: [input]
data: [data.yaml]
namespace: team
expected:
  Deployment/web: {allowed: false, violations: [finops.memory, finops.cpu], warnings: []}
  FinOpsPolicy/team/budget: {allowed: true}
"""
)


def _case_dir(tmp_path: Path, text: str, name: str = "case") -> Path:
    directory = tmp_path / name
    (directory / "input").mkdir(parents=True)
    (directory / "data.yaml").write_text("{}\n", encoding="utf-8")
    (directory / CASE_FILE).write_text(text, encoding="utf-8")
    return directory


def test_a_case_file_reads_into_a_case(tmp_path: Path) -> None:
    directory = _case_dir(tmp_path, GOOD)
    case = load_case(directory / CASE_FILE)
    assert case.name == str(directory)
    assert case.inputs == (directory / "input",)
    assert case.data == (directory / "data.yaml",)
    assert case.namespace == "team"
    assert case.description == "one deployment over budget"
    assert case.expected == (
        (ObjectKey("Deployment", None, "web"), Verdict(False, ("finops.cpu", "finops.memory"))),
        (ObjectKey("FinOpsPolicy", "team", "budget"), Verdict(True)),
    )


def test_a_case_knows_the_line_of_each_expectation(tmp_path: Path) -> None:
    directory = _case_dir(tmp_path, "# a comment\n---\n" + GOOD)
    case = load_case(directory / CASE_FILE)
    # HEADER is 2 lines; after the comment and the marker, `expected:` is line 9.
    assert case.expected_line == 9
    assert [key.line for key, _ in case.expected] == [10, 11]
    assert case.expectation_line("Deployment/web") == 10
    assert case.expectation_line("FinOpsPolicy/team/budget") == 11
    assert case.expectation_line("Service/unlisted") == 9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("namespace: team", "namspace: team"), "unknown field namspace"),
        (GOOD.replace("kind: PolicyTest", "kind: Suite"), "apiVersion and kind: expected"),
        (GOOD.replace("inputs: [input]", "inputs: input"), "inputs: expected a non-empty list"),
        (GOOD.replace("inputs: [input]", "inputs: [nowhere]"), "inputs[0]: "),
        (GOOD.replace("data: [data.yaml]", "data: [input]"), "data[0]: "),
        (GOOD.replace("Deployment/web:", "Deployment:"), "expected.Deployment: expected Kind/name"),
        (GOOD.replace("warnings: []", "warning: []"), "expected.Deployment/web.warning: unknown"),
        (GOOD.replace("allowed: false", "allowed: no way"), "expected.Deployment/web.allowed: "),
        (GOOD.replace("allowed: false", "allowed: true"),
         "expected.Deployment/web: allowed is true but violations is [finops.cpu, finops.memory]"),
        (GOOD.replace("warnings: []", "warnings: finops.cpu"),
         "expected.Deployment/web.warnings: expected a list of rule ids"),
        (HEADER + "inputs: [input]\nexpected: {}\n", "expected: a mapping from Kind/name"),
        (GOOD + "---\n" + GOOD, "a case file holds one YAML document, found 2"),
        (GOOD + "inputs: [input]\n", "key 'inputs' appears twice"),
    ],
)  # fmt: skip
def test_a_bad_case_file_is_refused_naming_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    directory = _case_dir(tmp_path, text)
    with pytest.raises(InputError) as raised:
        load_case(directory / CASE_FILE)
    assert str(raised.value).startswith(str(directory / CASE_FILE))
    assert message in str(raised.value)


def test_cases_are_found_recursively_skipping_hidden_directories(tmp_path: Path) -> None:
    first = _case_dir(tmp_path, GOOD, "a")
    second = _case_dir(tmp_path / "nested", GOOD, "b")
    _case_dir(tmp_path, GOOD, ".hidden")
    assert find_cases([tmp_path]) == [first / CASE_FILE, second / CASE_FILE]
    assert find_cases([second / CASE_FILE, tmp_path]) == [second / CASE_FILE, first / CASE_FILE]
    with pytest.raises(UsageError, match="no edgepolicy-test.yaml found in"):
        find_cases([tmp_path / "nested" / "b" / "input"])
    with pytest.raises(UsageError, match="no such file or directory"):
        find_cases([tmp_path / "missing"])


def _result(kind: str, namespace: str, name: str, decision: Decision) -> CheckResult:
    obj = {"kind": kind, "metadata": {"name": name, "namespace": namespace}}
    return CheckResult(Manifest("in.yaml", 0, 1, obj), namespace, decision)


CPU = Finding("finops.cpu", "team/budget", "finops.cpu: too much", "deny")


def test_compare_pairs_objects_by_key_and_counts_each_finding(tmp_path: Path) -> None:
    case = load_case(_case_dir(tmp_path, GOOD) / CASE_FILE)
    twice = Decision(allowed=False, violations=(CPU, CPU))
    report = CheckReport(
        (
            _result("FinOpsPolicy", "team", "budget", Decision(allowed=True)),
            _result("Deployment", "team", "web", twice),
        )
    )
    outcome = compare(case, report)
    assert [(o.key, o.passed) for o in outcome.objects] == [
        ("FinOpsPolicy/team/budget", True),
        ("Deployment/web", False),
    ]
    assert outcome.objects[1].problems() == [
        "violations: expected [finops.cpu, finops.memory], got [finops.cpu, finops.cpu]"
    ]
    assert not outcome.passed and outcome.failures == 1


def test_a_key_naming_two_objects_is_refused(tmp_path: Path) -> None:
    case = load_case(_case_dir(tmp_path, GOOD) / CASE_FILE)
    report = CheckReport(
        (
            _result("Deployment", "team", "web", Decision(allowed=True)),
            _result("Deployment", "other", "web", Decision(allowed=True)),
        )
    )
    with pytest.raises(InputError, match=r"expected\.Deployment/web: names 2 objects"):
        compare(case, report)


class FakeSession:
    """Stands in for the OPA session: records its data and allows everything."""

    started: list[dict[str, object]] = []

    def __init__(self, *, data: dict[str, object], **options: object) -> None:
        FakeSession.started.append(data)

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def check(self, manifests: list[Manifest], *, namespace: str) -> CheckReport:
        return CheckReport(
            tuple(CheckResult(m, namespace, Decision(allowed=True)) for m in manifests)
        )


def test_cases_with_the_same_data_share_one_opa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_text = HEADER + "inputs: [input]\ndata: [data.yaml]\nexpected:\n  Pod/p: {allowed: true}\n"
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
    contents = {"a": "x: {y: 1}\n", "b": "{x: {y: 1}}\n", "c": "x: {y: 2}\n"}
    for name, data in contents.items():
        directory = _case_dir(tmp_path, case_text, name)
        (directory / "data.yaml").write_text(data, encoding="utf-8")
        (directory / "input" / "pod.yaml").write_text(pod, encoding="utf-8")
    (tmp_path / "global.yaml").write_text("g: true\n", encoding="utf-8")
    FakeSession.started = []
    monkeypatch.setattr(suites, "CheckSession", FakeSession)

    report = suites.run_cases(
        [load_case(file) for file in find_cases([tmp_path])],
        opa_binary=Path("/opa"),
        policy=PolicySource(tmp_path, is_bundle=False),
        data_files=[tmp_path / "global.yaml"],
    )

    assert FakeSession.started == [{"g": True, "x": {"y": 1}}, {"g": True, "x": {"y": 2}}]
    assert [case.case.name for case in report.cases] == [str(tmp_path / n) for n in "abc"]
    assert report.exit_code() == 0
