"""What an audit run records, built from its report as plain Kubernetes documents (pure
functions; :mod:`edgepolicy.audit_recorder` writes them).

- Each FinOpsPolicy's ``status``, Gatekeeper's convention: ``auditTimestamp``,
  ``totalViolations`` and the first ``limit`` ``violations`` (kind, namespace, name, rule,
  message, enforcementAction), in the order of namespace, kind, name, rule and message.
- One ``events.k8s.io/v1`` Event per finding on the offending object (reason
  ``PolicyViolation``, type Warning). Its name is derived from the object's uid and the finding,
  so the same finding on the next run finds its Event and counts it (``series.count``,
  ``series.lastObservedTime``), as client-go's event recorder counts isomorphic events instead
  of creating new ones (when counts are written: :class:`edgepolicy.audit_recorder.AuditRecorder`).
- The counts behind the ``edgepolicy_audit_violations`` gauge, labelled with the policy's alert
  routing: every audit finding is a threshold the policy sets being exceeded, so ``severity``
  and ``recipient_group`` come from ``spec.alerting.thresholdExceeded``
  (``spec.alerting.idleShutdown`` belongs to idle shutdowns, which audits do not perform).

Findings of every enforcement action count (``deny``, ``warn`` and ``dryrun``), each labelled
with its action, as Gatekeeper's audit reports dry-run and warn constraints too.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgepolicy.checking import CheckReport

EVENT_API_VERSION = "events.k8s.io/v1"
EVENT_REASON = "PolicyViolation"
EVENT_ACTION = "Audit"
REPORTING_CONTROLLER = "apexlogic.com/edgepolicy-audit"
DEFAULT_VIOLATIONS_LIMIT = 20
# The API server refuses Event notes over 1 kB; object names longer than this leave room for
# the finding's digest within a name's 253 characters.
_NOTE_BYTES = 1024
_NAME_PREFIX = 200
_INSTANCE_CHARS = 128
_STATUS_MESSAGE_CHARS = 1024  # the CRD's status schema allows 4096


@dataclass(frozen=True)
class AuditViolation:
    """One finding of an audit on one stored object."""

    policy: str  # namespace/name of the policy that decided ("" when none)
    rule: str
    message: str
    enforcement_action: str
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    container: str | None = None

    def status_entry(self) -> dict[str, str]:
        """The entry of ``status.violations`` (Gatekeeper's fields plus the rule id)."""
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "rule": self.rule,
            "message": _shorten(self.message, _STATUS_MESSAGE_CHARS),
            "enforcementAction": self.enforcement_action,
        }


@dataclass(frozen=True)
class AlertRoute:
    """Where a policy's threshold alerts go: its ``severity`` and ``recipientGroup``."""

    severity: str = ""
    recipient_group: str = ""


def violations(report: CheckReport) -> list[AuditViolation]:
    """Every finding of ``report`` (denials, warnings, dry runs), in a stable order."""
    found: list[AuditViolation] = []
    for result in report.results:
        metadata = result.manifest.obj.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        for finding in (*result.violations, *result.warnings, *result.decision.dryrun):
            found.append(
                AuditViolation(
                    policy=finding.policy,
                    rule=finding.rule,
                    message=finding.message,
                    enforcement_action=finding.action,
                    api_version=result.api_version,
                    kind=result.kind,
                    namespace=result.namespace,
                    name=result.name,
                    uid=uid,
                    container=finding.container,
                )
            )
    found.sort(key=lambda v: (v.namespace, v.kind, v.name, v.rule, v.policy, v.message))
    return found


def audit_timestamp(moment: datetime) -> str:
    """``moment`` as the RFC 3339 UTC time of a ``status.auditTimestamp``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def policy_statuses(
    found: Iterable[AuditViolation],
    policies: Iterable[str],
    *,
    at: datetime,
    limit: int = DEFAULT_VIOLATIONS_LIMIT,
) -> dict[str, dict[str, Any]]:
    """Return the ``status`` of each policy in ``policies`` (``namespace/name``), a policy
    without findings included (``totalViolations: 0``). Findings of other policies are left
    out (they have no stored object to write to)."""
    by_policy: dict[str, list[AuditViolation]] = {policy: [] for policy in policies}
    for violation in found:
        if violation.policy in by_policy:
            by_policy[violation.policy].append(violation)
    stamp = audit_timestamp(at)
    return {
        policy: {
            "auditTimestamp": stamp,
            "totalViolations": len(entries),
            "violations": [entry.status_entry() for entry in entries[:limit]],
        }
        for policy, entries in by_policy.items()
    }


def alert_route(policy: Mapping[str, Any] | None) -> AlertRoute:
    """The route of ``policy``'s threshold alerts (``spec.alerting.thresholdExceeded``);
    empty labels when the policy names none or is unknown."""
    spec = policy.get("spec") if isinstance(policy, Mapping) else None
    alerting = spec.get("alerting") if isinstance(spec, Mapping) else None
    entry = alerting.get("thresholdExceeded") if isinstance(alerting, Mapping) else None
    if not isinstance(entry, Mapping):
        return AlertRoute()
    severity, group = entry.get("severity"), entry.get("recipientGroup")
    return AlertRoute(
        severity if isinstance(severity, str) else "",
        group if isinstance(group, str) else "",
    )


def violation_counts(
    found: Iterable[AuditViolation], routes: Mapping[str, AlertRoute]
) -> Counter[tuple[str, str, str, str, str]]:
    """Count findings by (policy, rule, severity, recipient group, enforcement action), the
    labels of ``edgepolicy_audit_violations``; ``routes`` maps a policy to its alert route."""
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    for violation in found:
        route = routes.get(violation.policy, AlertRoute())
        key = (
            violation.policy,
            violation.rule,
            route.severity,
            route.recipient_group,
            violation.enforcement_action,
        )
        counts[key] += 1
    return counts


def event_name(violation: AuditViolation) -> str:
    """The Event's name: the object's name and a digest of the object's uid and the finding,
    so one finding on one object always maps to one Event."""
    identity = "\x00".join(
        (
            violation.uid,
            violation.kind,
            violation.namespace,
            violation.name,
            violation.policy,
            violation.rule,
            violation.enforcement_action,
            violation.container or "",
            violation.message,
        )
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{violation.name[:_NAME_PREFIX]}.{digest}"


def micro_time(moment: datetime) -> str:
    """``moment`` as a Kubernetes MicroTime (RFC 3339 UTC with microseconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_event(violation: AuditViolation, *, at: datetime, instance: str) -> dict[str, Any]:
    """The Event reporting ``violation`` for the first time, regarding the offending object;
    ``instance`` names the reporting audit process (e.g. its pod)."""
    policy = f" [{violation.policy}]" if violation.policy else ""
    note = f"{violation.rule}{policy} ({violation.enforcement_action}): {violation.message}"
    regarding = {
        "apiVersion": violation.api_version,
        "kind": violation.kind,
        "namespace": violation.namespace,
        "name": violation.name,
    }
    if violation.uid:
        regarding["uid"] = violation.uid
    return {
        "apiVersion": EVENT_API_VERSION,
        "kind": "Event",
        "metadata": {
            "name": event_name(violation),
            "namespace": violation.namespace,
            "labels": {"app.kubernetes.io/managed-by": "edgepolicy-audit"},
            "annotations": {
                "policy.apexlogic.com/policy": violation.policy,
                "policy.apexlogic.com/rule": violation.rule,
                "policy.apexlogic.com/enforcement-action": violation.enforcement_action,
            },
        },
        "eventTime": micro_time(at),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance[:_INSTANCE_CHARS] or "edgepolicy-audit",
        "action": EVENT_ACTION,
        "reason": EVENT_REASON,
        "type": "Warning",
        "regarding": regarding,
        "note": _truncate(note, _NOTE_BYTES),
    }


def series_count(event: Mapping[str, Any]) -> int:
    """How often a stored Event was observed: its ``series.count``, else 1."""
    series = event.get("series")
    count = series.get("count") if isinstance(series, Mapping) else None
    return count if isinstance(count, int) and count >= 1 else 1


def counted_event(stored: Mapping[str, Any], count: int, *, at: datetime) -> dict[str, Any]:
    """``stored`` (an Event read back, with its resourceVersion) observed ``count`` times, the
    last at ``at``: its ``series`` (count at least 2, as the API requires of a series)."""
    event = dict(stored)
    event["series"] = {"count": max(count, 2), "lastObservedTime": micro_time(at)}
    return event


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _truncate(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."
