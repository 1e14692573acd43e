"""The machine-readable report, in the JSON shape issue 2 fixes."""

from __future__ import annotations

import json
from typing import Any

from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Finding


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
