"""The SARIF 2.1.0 report, for code-scanning views (GitHub, GitLab, Azure DevOps).

Rule ids become SARIF rules; each finding is a result located at the file and the line where
the object's YAML document starts. Denials are errors, warnings warnings, dry-run findings notes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edgepolicy import __version__
from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"deny": "error", "warn": "warning", "dryrun": "note"}

# What each rule of the shipped library checks (docs/policies.md explains them in full).
RULE_DESCRIPTIONS = {
    "finops.limits-missing": "Every container of a selected workload sets cpu and memory limits.",
    "finops.cpu": "Max scale times the per-pod CPU limit stays within maxCPUCores.",
    "finops.memory": "Max scale times the per-pod memory limit stays within maxMemoryGB.",
    "finops.gpu-hours": "Max scale times GPUs times daily active hours stays within dailyGPUHours.",
    "finops.replicas": "spec.replicas lies within the policy's autoScale bounds.",
    "finops.hpa": "A HorizontalPodAutoscaler of a selected workload keeps the policy's "
    "autoScale bounds and CPU target.",
    "finops.idle-shutdown": "The idle-shutdown annotation does not exceed "
    "idleShutdownThresholdMinutes.",
    "model.quantization": "Models must be verified as quantized when the policy requires it.",
    "model.signature": "Every model a selected workload names carries a signature from a signer "
    "the ModelPolicy trusts, covering its facts.",
    "model.bias": "Every fairness metric of the verified facts is within the ModelPolicy's "
    "biasThresholds for every sensitive feature.",
    "model.explainability": "The verified facts hold an explainability report when the "
    "ModelPolicy requires one.",
    "model.metadata": "The verified model card sets every field of requiredMetadata.",
    "policy.invalid": "A FinOpsPolicy or ModelPolicy object is well formed.",
}


def render(report: CheckReport) -> str:
    """Render ``report`` as a SARIF 2.1.0 log with one run."""
    findings = [
        (result, finding)
        for result in report.results
        for finding in (*result.violations, *result.warnings, *result.decision.dryrun)
    ]
    rule_ids = sorted({finding.rule for _, finding in findings})
    rule_index = {rule: position for position, rule in enumerate(rule_ids)}
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "edgepolicy",
                        "version": __version__,
                        "rules": [_rule(rule) for rule in rule_ids],
                    }
                },
                "results": [
                    _result(result, finding, rule_index[finding.rule])
                    for result, finding in findings
                ],
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _rule(rule: str) -> dict[str, Any]:
    description = RULE_DESCRIPTIONS.get(rule, f"edgepolicy rule {rule}.")
    return {
        "id": rule,
        "name": rule,
        "shortDescription": {"text": description},
        "defaultConfiguration": {"level": "error"},
    }


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
        "message": {"text": f"{result.kind} {name}: {finding.message}"},
        "locations": [
            {
                "physicalLocation": physical,
                "logicalLocations": [
                    {"name": result.name, "fullyQualifiedName": f"{result.kind}/{name}"}
                ],
            }
        ],
        "properties": properties,
    }


def artifact_uri(file: str) -> str:
    """Return a SARIF artifact URI: relative paths as URI references, absolute as file URIs."""
    path = Path(file)
    if path.is_absolute():
        return path.as_uri()
    return quote(path.as_posix())
