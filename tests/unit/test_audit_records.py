"""What an audit run records: policy statuses, Events, metric counts (pure builders), the
metrics' exposition and the --interval durations."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from prometheus_client import generate_latest

from edgepolicy import audit_records
from edgepolicy.audit_metrics import AuditMetrics
from edgepolicy.audit_records import AlertRoute, AuditViolation
from edgepolicy.checking import CheckReport, CheckResult
from edgepolicy.cli.audit_command import parse_interval
from edgepolicy.decision import Decision, Finding
from edgepolicy.errors import UsageError
from edgepolicy.manifests import Manifest

POLICY = "ai/budget"
AT = datetime(2026, 12, 6, 11, 30, 5, 123456, tzinfo=UTC)


def _violation(name: str = "big", rule: str = "finops.cpu", **overrides: str) -> AuditViolation:
    fields = {
        "policy": POLICY,
        "rule": rule,
        "message": f"{rule}: Deployment ai/{name}: too much",
        "enforcement_action": "deny",
        "api_version": "apps/v1",
        "kind": "Deployment",
        "namespace": "ai",
        "name": name,
        "uid": f"uid-{name}",
    }
    fields.update(overrides)
    return AuditViolation(**fields)  # type: ignore[arg-type]


def _result(name: str, decision: Decision) -> CheckResult:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ai", "uid": f"uid-{name}"},
    }
    return CheckResult(
        Manifest(f"apis/apps/v1/namespaces/ai/deployments/{name}", 0, None, obj), "ai", decision
    )


def test_violations_take_every_action_in_a_stable_order() -> None:
    deny = Finding("finops.cpu", POLICY, "cpu", "deny")
    warn = Finding("model.quantization", POLICY, "quantized", "warn")
    dry = Finding("finops.replicas", POLICY, "replicas", "dryrun", container="server")
    report = CheckReport(
        (
            _result("zeta", Decision(False, violations=(deny,), warnings=(warn,))),
            _result("alpha", Decision(True, dryrun=(dry,))),
        )
    )

    found = audit_records.violations(report)

    assert [(v.name, v.rule, v.enforcement_action) for v in found] == [
        ("alpha", "finops.replicas", "dryrun"),
        ("zeta", "finops.cpu", "deny"),
        ("zeta", "model.quantization", "warn"),
    ]
    assert found[0].uid == "uid-alpha" and found[0].container == "server"


def test_status_counts_all_lists_the_first_n_and_covers_clean_policies() -> None:
    found = [_violation(f"w{n}") for n in range(5)] + [_violation(policy="other/p")]

    statuses = audit_records.policy_statuses(found, [POLICY, "ai/clean"], at=AT, limit=2)

    assert statuses[POLICY] == {
        "auditTimestamp": "2026-12-06T11:30:05Z",
        "totalViolations": 5,
        "violations": [
            {
                "kind": "Deployment",
                "namespace": "ai",
                "name": "w0",
                "rule": "finops.cpu",
                "message": "finops.cpu: Deployment ai/w0: too much",
                "enforcementAction": "deny",
            },
            {
                "kind": "Deployment",
                "namespace": "ai",
                "name": "w1",
                "rule": "finops.cpu",
                "message": "finops.cpu: Deployment ai/w1: too much",
                "enforcementAction": "deny",
            },
        ],
    }
    assert statuses["ai/clean"] == {
        "auditTimestamp": "2026-12-06T11:30:05Z",
        "totalViolations": 0,
        "violations": [],
    }
    assert "other/p" not in statuses


def test_status_message_is_shortened_to_fit_the_schema() -> None:
    entry = _violation(message="x" * 5000).status_entry()

    assert len(entry["message"]) == 1024 and entry["message"].endswith("...")


def test_alert_route_reads_threshold_exceeded_only() -> None:
    policy = {
        "spec": {
            "alerting": {
                "thresholdExceeded": {"severity": "CRITICAL", "recipientGroup": "finops-team"},
                "idleShutdown": {"severity": "INFO", "recipientGroup": "mlops"},
            }
        }
    }

    assert audit_records.alert_route(policy) == AlertRoute("CRITICAL", "finops-team")
    assert audit_records.alert_route({"spec": {"alerting": {"idleShutdown": {}}}}) == AlertRoute()
    assert (
        audit_records.alert_route({"spec": {"alerting": {"thresholdExceeded": {"severity": 3}}}})
        == AlertRoute()
    )
    assert audit_records.alert_route(None) == AlertRoute()


def test_violation_counts_carry_the_route_labels() -> None:
    found = [
        _violation("a"),
        _violation("b"),
        _violation("a", rule="model.quantization", enforcement_action="warn"),
        _violation(policy="ns/unknown"),
    ]

    counts = audit_records.violation_counts(found, {POLICY: AlertRoute("CRITICAL", "finops")})

    assert counts == Counter(
        {
            (POLICY, "finops.cpu", "CRITICAL", "finops", "deny"): 2,
            (POLICY, "model.quantization", "CRITICAL", "finops", "warn"): 1,
            ("ns/unknown", "finops.cpu", "", "", "deny"): 1,
        }
    )


def test_event_names_one_finding_on_one_object() -> None:
    name = audit_records.event_name(_violation())

    assert name.startswith("big.") and len(name) == len("big.") + 16
    assert audit_records.event_name(_violation()) == name
    assert audit_records.event_name(_violation(uid="uid-recreated")) != name
    assert audit_records.event_name(_violation(message="other numbers")) != name
    assert audit_records.event_name(_violation(rule="finops.memory")) != name
    assert len(audit_records.event_name(_violation(name="n" * 253))) <= 253


def test_new_event_regards_the_offending_object() -> None:
    event = audit_records.new_event(_violation(), at=AT, instance="audit-7d9f")

    assert event["apiVersion"] == "events.k8s.io/v1"
    assert event["metadata"]["namespace"] == "ai"
    assert event["metadata"]["name"] == audit_records.event_name(_violation())
    assert event["eventTime"] == "2026-12-06T11:30:05.123456Z"
    assert event["reason"] == "PolicyViolation" and event["type"] == "Warning"
    assert event["reportingController"] == "apexlogic.com/edgepolicy-audit"
    assert event["reportingInstance"] == "audit-7d9f"
    assert event["regarding"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "ai",
        "name": "big",
        "uid": "uid-big",
    }
    assert event["note"] == "finops.cpu [ai/budget] (deny): finops.cpu: Deployment ai/big: too much"
    assert "series" not in event


def test_event_note_fits_the_api_limit() -> None:
    event = audit_records.new_event(_violation(message="é" * 2000), at=AT, instance="x")

    assert len(event["note"].encode()) <= 1024 and event["note"].endswith("...")


def test_counted_event_writes_a_series_over_the_stored_event() -> None:
    first = audit_records.new_event(_violation(), at=AT, instance="x")
    first["metadata"]["resourceVersion"] = "41"
    later = datetime(2026, 12, 6, 11, 31, tzinfo=UTC)

    second = audit_records.counted_event(first, 2, at=later)
    seventh = audit_records.counted_event(second, 7, at=later)

    assert second["series"] == {"count": 2, "lastObservedTime": "2026-12-06T11:31:00.000000Z"}
    assert audit_records.series_count(first) == 1
    assert audit_records.series_count(second) == 2 and audit_records.series_count(seventh) == 7
    assert second["metadata"]["resourceVersion"] == "41"  # the write is conditional
    assert second["eventTime"] == first["eventTime"] and second["note"] == first["note"]
    assert "series" not in first
    assert audit_records.counted_event(first, 1, at=later)["series"]["count"] == 2


def test_metrics_expose_the_last_run_only() -> None:
    metrics = AuditMetrics()
    metrics.completed(
        Counter({(POLICY, "finops.cpu", "CRITICAL", "finops-team", "deny"): 2}),
        started=1_700_000_000.0,
        seconds=1.5,
        objects=12,
    )
    metrics.completed(
        Counter({(POLICY, "finops.memory", "CRITICAL", "finops-team", "warn"): 1}),
        started=1_700_000_060.0,
        seconds=0.5,
        objects=11,
    )

    body = generate_latest(metrics.registry).decode()

    assert (
        'edgepolicy_audit_violations{enforcement_action="warn",policy="ai/budget",'
        'recipient_group="finops-team",rule="finops.memory",severity="CRITICAL"} 1.0'
    ) in body
    assert 'rule="finops.cpu"' not in body  # fixed since: the alert resolves
    assert "edgepolicy_audit_last_run_timestamp_seconds 1.70000006e+09" in body
    assert "edgepolicy_audit_objects 11.0" in body
    assert "edgepolicy_audit_run_duration_seconds_count 2.0" in body


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60.0), ("5m", 300.0), ("1h30m", 5400.0), ("1500ms", 1.5), ("0.5m", 30.0)],
)
def test_interval_durations(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "60", "1d", "5 m", "-5s", "500ms", "m"])
def test_bad_interval_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--interval"):
        parse_interval(text)
