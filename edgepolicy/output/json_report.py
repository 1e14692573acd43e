"""The machine-readable reports: ``check`` in the JSON shape issue 2 fixes, and ``verify``
(one entry per case with every object's expected and actual verdict; docs/verify.md)."""

from __future__ import annotations

import json
from typing import Any

from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Finding
from edgepolicy.suites import CaseOutcome, ObjectOutcome, SuiteReport


def render(report: CheckReport) -> str:
    """Render ``report`` as one JSON document: ``{"results": [...], "summary": {...}}``."""
    document = {
        "results": [_result(result) for result in report.results],
        "summary": {
            "objects": len(report.results),
            "denied": report.denied,
            "warned": report.warned,
        },
    }
    return json.dumps(document, indent=2) + "\n"


def _result(result: CheckResult) -> dict[str, Any]:
    return {
        "file": result.file,
        "index": result.index,
        "apiVersion": result.api_version,
        "kind": result.kind,
        "namespace": result.namespace,
        "name": result.name,
        "allowed": not result.denied,
        "violations": [_finding(finding) for finding in result.violations],
        "warnings": [_finding(finding) for finding in result.warnings],
    }


def _finding(finding: Finding) -> dict[str, str]:
    return {"rule": finding.rule, "message": finding.message, "policy": finding.policy}


def render_suite(report: SuiteReport) -> str:
    """Render a ``verify`` report as one JSON document: ``{"cases": [...], "summary": {...}}``."""
    document = {
        "cases": [_case(case) for case in report.cases],
        "summary": {
            "cases": len(report.cases),
            "passed": len(report.cases) - report.failed,
            "failed": report.failed,
        },
    }
    return json.dumps(document, indent=2) + "\n"


def _case(case: CaseOutcome) -> dict[str, Any]:
    return {
        "case": case.case.name,
        "file": str(case.case.file),
        "passed": case.passed,
        "objects": [_outcome(outcome) for outcome in case.objects],
    }


def _outcome(outcome: ObjectOutcome) -> dict[str, Any]:
    result = outcome.result
    actual = outcome.actual
    return {
        "object": outcome.key,
        "file": result.file if result is not None else None,
        "line": result.line if result is not None else None,
        "passed": outcome.passed,
        "problems": outcome.problems(),
        "expected": outcome.expected.to_dict() if outcome.expected is not None else None,
        "actual": actual.to_dict() if actual is not None else None,
        "findings": [
            finding.to_dict()
            for finding in (
                (*result.violations, *result.warnings, *result.decision.dryrun)
                if result is not None
                else ()
            )
        ],
    }
