"""The JUnit XML report: one test suite per file, one test case per object.

A denied object is a failed test case whose failure lists every violation; warnings and dry-run
findings go to the test case's ``system-out``, since JUnit has no warning status. With
``--fail-on-warn`` a warned object fails too, its failure listing the warnings.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Finding


def render(report: CheckReport) -> str:
    """Render ``report`` as a JUnit XML document."""
    root = ElementTree.Element(
        "testsuites",
        name="edgepolicy check",
        tests=str(len(report.results)),
        failures=str(sum(1 for result in report.results if report.fails(result))),
        errors="0",
        skipped="0",
    )
    by_file: dict[str, list[CheckResult]] = {}
    for result in report.results:
        by_file.setdefault(result.file, []).append(result)
    for file, results in by_file.items():
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(results)),
            failures=str(sum(1 for result in results if report.fails(result))),
            errors="0",
            skipped="0",
        )
        for result in results:
            _add_case(suite, result, fails=report.fails(result))
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def _add_case(suite: ElementTree.Element, result: CheckResult, *, fails: bool) -> None:
    name = f"{result.namespace}/{result.name}" if result.namespace else result.name
    case = ElementTree.SubElement(
        suite,
        "testcase",
        name=f"{result.kind} {name} (#{result.index})",
        classname=result.file,
        file=result.file,
    )
    if result.line is not None:
        case.set("line", str(result.line))
    if fails:
        reasons = result.violations or result.warnings
        verb = "denied" if result.violations else "warned (--fail-on-warn)"
        failure = ElementTree.SubElement(
            case,
            "failure",
            type=reasons[0].rule,
            message=f"{verb} by " + ", ".join(sorted({finding.rule for finding in reasons})),
        )
        failure.text = "\n".join(_line(finding) for finding in reasons)
    notes = [*result.warnings, *result.decision.dryrun]
    if notes:
        output = ElementTree.SubElement(case, "system-out")
        output.text = "\n".join(f"{finding.action}: {_line(finding)}" for finding in notes)


def _line(finding: Finding) -> str:
    container = f" (container {finding.container})" if finding.container else ""
    message = finding.message.removeprefix(f"{finding.rule}: ")  # the rule is named already
    return f"{finding.rule} [{finding.policy}]{container}: {message}"
