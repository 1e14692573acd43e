"""The human-readable reports: ``check``, one verdict line per object, then what to change;
``verify``, one line per case, then the objects whose verdict is not the expected one."""

from __future__ import annotations

from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.decision import Finding
from edgepolicy.suites import SuiteReport


def render(report: CheckReport) -> str:
    """Render ``report`` for a terminal."""
    lines: list[str] = []
    for result in report.results:
        lines.append(_headline(result))
        lines.extend(_finding("deny", finding) for finding in result.violations)
        lines.extend(_finding("warn", finding) for finding in result.warnings)
        lines.extend(_finding("dryrun", finding) for finding in result.decision.dryrun)
    lines.append("")
    lines.append(
        f"{len(report.results)} object(s) checked: {report.denied} denied, "
        f"{report.warned} warned, {len(report.results) - report.denied} allowed"
    )
    return "\n".join(lines) + "\n"


def _headline(result: CheckResult) -> str:
    verdict = "DENY" if result.denied else ("WARN" if result.warnings else "PASS")
    where = f"{result.file}:{result.line}" if result.line is not None else result.file
    name = f"{result.namespace}/{result.name}" if result.namespace else result.name
    headline = f"{verdict} {where} {result.kind} {name}"
    if result.is_policy:
        return f"{headline} (policy object, validated)"
    if not result.is_checked_kind:
        return f"{headline} (kind {result.kind} has no edgepolicy rules; allowed)"
    if result.decision.policies:
        return f"{headline} (policies: {', '.join(result.decision.policies)})"
    findings = (*result.violations, *result.warnings, *result.decision.dryrun)
    judging = sorted({finding.policy for finding in findings if finding.policy})
    if judging:  # e.g. a malformed policy of the namespace fails closed on it
        return f"{headline} (no valid policy selects it; judged by {', '.join(judging)})"
    return f"{headline} (no policy selects it)"


def _finding(label: str, finding: Finding) -> str:
    if finding.message.startswith(f"{finding.rule}:"):
        return f"  {label}: {finding.message}"
    container = f" container {finding.container}:" if finding.container else ""
    policy = f" [{finding.policy}]" if finding.policy else ""
    return f"  {label}: {finding.rule}{policy}{container} {finding.message}"


def render_suite(report: SuiteReport) -> str:
    """Render a ``verify`` report: one line per case, then what is not as expected."""
    lines: list[str] = []
    for case in report.cases:
        objects = len(case.objects)
        if case.passed:
            lines.append(f"PASS {case.case.name} ({objects} object(s) as expected)")
            continue
        lines.append(
            f"FAIL {case.case.name} ({case.failures} of {objects} object(s) not as expected)"
        )
        for outcome in case.objects:
            if outcome.passed:
                continue
            result = outcome.result
            where = ""
            if result is not None:
                where = f" ({result.file}:{result.line})" if result.line else f" ({result.file})"
            lines.append(f"  {outcome.key}{where}:")
            lines.extend(f"    {problem}" for problem in outcome.problems())
            if result is not None:
                findings = (*result.violations, *result.warnings, *result.decision.dryrun)
                lines.extend(f"    {_finding(f.action, f).strip()}" for f in findings)
    passed = len(report.cases) - report.failed
    lines.append("")
    lines.append(f"{len(report.cases)} case(s) verified: {passed} passed, {report.failed} failed")
    return "\n".join(lines) + "\n"
