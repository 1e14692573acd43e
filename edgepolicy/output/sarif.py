"""The SARIF 2.1.0 reports, for code-scanning views (GitHub, GitLab, Azure DevOps).

``check``: each rule id becomes a SARIF rule described from the policy's Rego METADATA (the
report's :class:`~edgepolicy.rule_catalogue.RuleCatalogue`): a PascalCase ``name``, a one-line
``shortDescription``, a ``fullDescription``, ``help`` in text and Markdown with the fix, and a
``helpUri`` to the rule's section of docs/policies.md. Each finding is a result located at the
file and line where the object's YAML document starts, with a logical location naming the
object and a fingerprint that survives the object moving within its file. Denials are errors,
warnings warnings, dry-run findings notes.

``verify``: one rule, :data:`~edgepolicy.rule_catalogue.VERIFY_RULE`, described the same way;
each object not given its expected verdict is an error located at its case file, on the line
of its entry under ``expected`` (else of ``expected:``), naming the case and the object, with
the object's manifest as a related location. A suite that passes has no results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edgepolicy import __version__
from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Finding
from edgepolicy.rule_catalogue import PROJECT_URI, VERIFY_RULE, RuleInfo
from edgepolicy.suites import CaseOutcome, ObjectOutcome, SuiteReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = PROJECT_URI
FINGERPRINT = "edgepolicyFinding/v1"
VERIFY_FINGERPRINT = "edgepolicyVerify/v1"
_LEVELS = {"deny": "error", "warn": "warning", "dryrun": "note"}


def render(report: CheckReport) -> str:
    """Render a ``check`` report as a SARIF 2.1.0 log with one run."""
    findings = [
        (result, finding)
        for result in report.results
        for finding in (*result.violations, *result.warnings, *result.decision.dryrun)
    ]
    rule_ids = sorted(set(report.rules.ids()) | {finding.rule for _, finding in findings})
    rule_index = {rule: position for position, rule in enumerate(rule_ids)}
    return _log(
        [report.rules.get(rule) for rule in rule_ids],
        [_result(result, finding, rule_index[finding.rule]) for result, finding in findings],
    )


def render_suite(report: SuiteReport) -> str:
    """Render a ``verify`` report as a SARIF 2.1.0 log with one run: a result per object not
    given its expected verdict (none when every case passed)."""
    return _log(
        [VERIFY_RULE],
        [
            _verify_result(case, outcome)
            for case in report.cases
            for outcome in case.objects
            if not outcome.passed
        ],
    )


def _log(rules: Sequence[RuleInfo], results: Sequence[dict[str, Any]]) -> str:
    """The SARIF log of one run of edgepolicy describing ``rules`` and holding ``results``."""
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "edgepolicy",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(info) for info in rules],
                    }
                },
                "results": list(results),
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _rule(info: RuleInfo) -> dict[str, Any]:
    summary = info.summary or f"edgepolicy rule {info.id}"
    description = info.description or summary
    text = [description]
    markdown = [f"**{info.id}**: {description}"]
    if info.fix:
        text.append(f"How to fix: {info.fix}")
        markdown.append(f"**How to fix:** {info.fix}")
    if info.help_uri:
        text.append(f"Documentation: {info.help_uri}")
        markdown.append(f"[Documentation of {info.id}]({info.help_uri})")
    rule: dict[str, Any] = {
        "id": info.id,
        "name": info.name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": description},
        "help": {"text": "\n\n".join(text), "markdown": "\n\n".join(markdown)},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["kubernetes", info.id.split(".")[0]]},
    }
    if info.help_uri:
        rule["helpUri"] = info.help_uri
    return rule


def _result(result: CheckResult, finding: Finding, index: int) -> dict[str, Any]:
    name = f"{result.namespace}/{result.name}" if result.namespace else result.name
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(result.file)}}
    if result.line is not None:
        physical["region"] = {"startLine": result.line}
    properties: dict[str, Any] = {"policy": finding.policy, "action": finding.action}
    if finding.container is not None:
        properties["container"] = finding.container
    return {
        "ruleId": finding.rule,
        "ruleIndex": index,
        "level": _LEVELS[finding.action],
        "message": {"text": _message(result, finding, name)},
        "locations": [
            {
                "physicalLocation": physical,
                "logicalLocations": [
                    {
                        "name": result.name,
                        "fullyQualifiedName": f"{result.kind}/{name}",
                        "kind": "resource",
                    }
                ],
            }
        ],
        "partialFingerprints": {FINGERPRINT: _fingerprint(result, finding)},
        "properties": properties,
    }


def _message(result: CheckResult, finding: Finding, name: str) -> str:
    """The finding's message, naming the object once: the rule id prefix goes (the result
    names its rule), and the object is put in front only when the message does not name it."""
    message = finding.message.removeprefix(f"{finding.rule}: ")
    subject = f"{result.kind} {name}"
    return message if subject in message else f"{subject}: {message}"


def _fingerprint(result: CheckResult, finding: Finding) -> str:
    """What identifies a finding across runs: the object (not its line), the rule, the policy,
    the container and the message."""
    return _digest(
        [
            result.file,
            result.kind,
            result.namespace,
            result.name,
            finding.rule,
            finding.policy,
            finding.container or "",
            finding.message,
        ]
    )


def _verify_result(case: CaseOutcome, outcome: ObjectOutcome) -> dict[str, Any]:
    problems = outcome.problems()
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(str(case.case.file))}}
    line = case.case.expectation_line(outcome.key)
    if line is not None:
        physical["region"] = {"startLine": line}
    properties: dict[str, Any] = {"case": case.case.name, "object": outcome.key}
    if outcome.expected is not None:
        properties["expected"] = outcome.expected.to_dict()
    actual = outcome.actual
    if actual is not None:
        properties["actual"] = actual.to_dict()
    sarif_result: dict[str, Any] = {
        "ruleId": VERIFY_RULE.id,
        "ruleIndex": 0,
        "level": "error",
        "message": {"text": f"{outcome.key} in case {case.case.name}: {'; '.join(problems)}"},
        "locations": [
            {
                "physicalLocation": physical,
                "logicalLocations": [
                    {
                        "name": outcome.key,
                        "fullyQualifiedName": f"{case.case.name}/{outcome.key}",
                        "kind": "resource",
                    }
                ],
            }
        ],
        "partialFingerprints": {
            VERIFY_FINGERPRINT: _digest([str(case.case.file), outcome.key, *problems])
        },
        "properties": properties,
    }
    result = outcome.result
    if result is not None:  # where the object itself is written
        manifest: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(result.file)}}
        if result.line is not None:
            manifest["region"] = {"startLine": result.line}
        name = f"{result.namespace}/{result.name}" if result.namespace else result.name
        sarif_result["relatedLocations"] = [
            {
                "id": 0,
                "physicalLocation": manifest,
                "message": {"text": f"{result.kind} {name}"},
            }
        ]
    return sarif_result


def _digest(identity: list[str]) -> str:
    return hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()


def artifact_uri(file: str) -> str:
    """Return a SARIF artifact URI: relative paths as URI references, absolute as file URIs."""
    path = Path(file)
    if path.is_absolute():
        return path.as_uri()
    return quote(path.as_posix())
