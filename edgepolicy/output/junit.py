"""The JUnit XML report, in the shape Jenkins, GitLab and Azure DevOps read.

``check``: one test suite per file, one test case per object. A denied object is a failed test
case whose failure lists every violation; with ``--fail-on-warn`` a warned object fails too, its
failure listing the warnings. Warnings and dry-run findings of objects that pass go to the
suite's ``system-out``, one line per finding naming the object. ``verify``: one test suite per
case, one test case per object, failed when its verdict is not the expected one.

The document validates against the Jenkins xUnit plugin's ``junit-10.xsd`` (what Jenkins
enforces) and, below the root, against the Ant ``JUnit.xsd`` (whose ``testsuites`` takes no
attributes: the totals on the root are the one thing it does not declare). So: ``time`` on
every suite, case and the root (seconds, three decimals), ``timestamp`` (UTC, no zone) and
``hostname`` on suites, ``properties``/``system-out``/``system-err`` in every suite, at most
one ``failure`` per case, no attributes the schemas lack (no ``file``/``line`` on cases:
the file is the case's ``classname`` and the line is in the failure text).
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from edgepolicy import __version__
from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Finding
from edgepolicy.suites import CaseOutcome, ObjectOutcome, SuiteReport


@dataclass(frozen=True)
class _Failure:
    type: str
    message: str
    text: str


@dataclass(frozen=True)
class _Case:
    name: str
    classname: str
    seconds: float
    failure: _Failure | None = None


@dataclass(frozen=True)
class _Suite:
    name: str
    cases: tuple[_Case, ...]
    output: str = ""


def render(report: CheckReport) -> str:
    """Render a ``check`` report as a JUnit XML document."""
    by_file: dict[str, list[CheckResult]] = {}
    for result in report.results:
        by_file.setdefault(result.file, []).append(result)
    suites = [
        _Suite(
            name=file,
            cases=tuple(
                _check_case(result, _failing_findings(report, result)) for result in results
            ),
            output="\n".join(
                _note(result, finding) for result in results for finding in _notes(report, result)
            ),
        )
        for file, results in by_file.items()
    ]
    return _document("edgepolicy check", suites, report.started_at, report.seconds)


def render_suite(report: SuiteReport) -> str:
    """Render a ``verify`` report as a JUnit XML document."""
    suites = [
        _Suite(
            name=case.case.name,
            cases=tuple(_verify_case(case, outcome) for outcome in case.objects),
        )
        for case in report.cases
    ]
    return _document("edgepolicy verify", suites, report.started_at, report.seconds)


def _failing_findings(report: CheckReport, result: CheckResult) -> tuple[Finding, ...]:
    """The findings a failed test case lists: its violations, else (--fail-on-warn) warnings."""
    if not report.fails(result):
        return ()
    return result.violations or result.warnings


def _notes(report: CheckReport, result: CheckResult) -> list[Finding]:
    """The warnings and dry-run findings its failure, if any, does not list already."""
    listed = _failing_findings(report, result)
    return [f for f in (*result.warnings, *result.decision.dryrun) if f not in listed]


def _check_case(result: CheckResult, reasons: tuple[Finding, ...]) -> _Case:
    name = f"{result.namespace}/{result.name}" if result.namespace else result.name
    failure = None
    if reasons:
        verb = "denied" if result.violations else "warned (--fail-on-warn)"
        failure = _Failure(
            type=reasons[0].rule,
            message=f"{verb} by " + ", ".join(sorted({finding.rule for finding in reasons})),
            text="\n".join([f"at {_place(result)}", *(_line(finding) for finding in reasons)]),
        )
    return _Case(
        name=f"{result.kind} {name} (#{result.index})",
        classname=result.file,
        seconds=result.seconds,
        failure=failure,
    )


def _verify_case(case: CaseOutcome, outcome: ObjectOutcome) -> _Case:
    result = outcome.result
    failure = None
    if not outcome.passed:
        problems = outcome.problems()
        details = [f"at {_place(result)}"] if result is not None else []
        if result is not None:
            findings = (*result.violations, *result.warnings, *result.decision.dryrun)
            details += [f"{finding.action}: {_line(finding)}" for finding in findings]
        failure = _Failure(
            type="verdict",
            message="; ".join(problems),
            text="\n".join([*problems, *details]),
        )
    return _Case(
        name=outcome.key,
        classname=case.case.name,
        seconds=result.seconds if result is not None else 0.0,
        failure=failure,
    )


def _document(
    name: str, suites: Sequence[_Suite], started_at: datetime | None, seconds: float
) -> str:
    timestamp = (started_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    hostname = socket.gethostname() or "localhost"
    tests = sum(len(suite.cases) for suite in suites)
    failures = sum(1 for suite in suites for case in suite.cases if case.failure)
    root = ElementTree.Element(
        "testsuites",
        name=name,
        tests=str(tests),
        failures=str(failures),
        errors="0",
        time=_seconds(seconds),
    )
    for position, suite in enumerate(suites):
        element = ElementTree.SubElement(
            root,
            "testsuite",
            name=_xml(suite.name),
            package=_xml(suite.name),
            id=str(position),
            tests=str(len(suite.cases)),
            failures=str(sum(1 for case in suite.cases if case.failure)),
            errors="0",
            skipped="0",
            time=_seconds(sum(case.seconds for case in suite.cases)),
            timestamp=timestamp,
            hostname=hostname,
        )
        properties = ElementTree.SubElement(element, "properties")
        ElementTree.SubElement(properties, "property", name="edgepolicy.version", value=__version__)
        for case in suite.cases:
            _add_case(element, case)
        ElementTree.SubElement(element, "system-out").text = _xml(suite.output)
        ElementTree.SubElement(element, "system-err").text = ""
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def _add_case(suite: ElementTree.Element, case: _Case) -> None:
    element = ElementTree.SubElement(
        suite,
        "testcase",
        name=_xml(case.name),
        classname=_xml(case.classname),
        time=_seconds(case.seconds),
    )
    if case.failure is not None:
        failure = ElementTree.SubElement(
            element, "failure", type=_xml(case.failure.type), message=_xml(case.failure.message)
        )
        failure.text = _xml(case.failure.text)


# Characters XML 1.0 cannot carry at all (a finding may quote a user's value holding them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _seconds(seconds: float) -> str:
    """Format a duration as the schemas want it: decimal seconds, at most three decimals."""
    return f"{max(seconds, 0.0):.3f}"


def _place(result: CheckResult) -> str:
    return f"{result.file}:{result.line}" if result.line is not None else result.file


def _note(result: CheckResult, finding: Finding) -> str:
    name = f"{result.namespace}/{result.name}" if result.namespace else result.name
    return f"{finding.action}: {result.kind} {name} ({_place(result)}): {_line(finding)}"


def _line(finding: Finding) -> str:
    container = f" (container {finding.container})" if finding.container else ""
    message = finding.message.removeprefix(f"{finding.rule}: ")  # the rule is named already
    return f"{finding.rule} [{finding.policy}]{container}: {message}"
