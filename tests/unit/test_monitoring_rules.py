"""deploy/monitoring: the plain Prometheus rules file and the PrometheusRule hold the same rules,
and the policy alerts carry the policy's routing labels from the audit's metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"


def _load(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


def test_prometheusrule_holds_the_rules_file_groups() -> None:
    rules_file = _load("edgepolicy-alerts.rules.yaml")
    resource = _load("prometheusrule.yaml")

    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"] == rules_file
    assert set(rules_file) == {"groups"}


def test_policy_alert_keeps_the_policy_severity_and_recipient_group() -> None:
    rules = {
        rule["alert"]: rule
        for group in _load("edgepolicy-alerts.rules.yaml")["groups"]
        for rule in group["rules"]
    }
    policy_alert = rules["FinOpsPolicyThresholdExceeded"]

    # The alert's labels are the series' (policy, rule, severity, recipient_group,
    # enforcement_action): the rule must not overwrite the policy's routing labels.
    assert "edgepolicy_audit_violations" in policy_alert["expr"]
    assert "by (" not in policy_alert["expr"] and "sum" not in policy_alert["expr"]
    assert not {"severity", "recipient_group"} & set(policy_alert.get("labels") or {})
    assert 'enforcement_action!="dryrun"' in policy_alert["expr"]
    for name, rule in rules.items():
        assert rule.get("for"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name


def test_finops_alerts_keep_the_policy_routing_labels() -> None:
    rules = {
        rule["alert"]: rule
        for group in _load("edgepolicy-alerts.rules.yaml")["groups"]
        for rule in group["rules"]
    }
    budget = rules["FinOpsPolicyBudgetExceeded"]
    idle = rules["FinOpsPolicyIdleShutdown"]

    # One-to-one comparison of two series with the same labels (policy, severity,
    # recipient_group): no aggregation or `on (...)` that would drop the routing labels.
    assert budget["expr"] == (
        "edgepolicy_finops_gpu_hours_last_24h > edgepolicy_finops_daily_gpu_hours"
    )
    assert "edgepolicy_finops_idle_shutdown" in idle["expr"]
    assert 'enforcement_action!="dryrun"' in idle["expr"]
    for rule in (budget, idle):
        assert not {"severity", "recipient_group"} & set(rule.get("labels") or {})


def test_policy_alerts_carry_the_recipient_group_under_the_policy_field_name() -> None:
    # The contract: alerts "labelled with the policy's `severity` and `recipientGroup`"
    # (spec.alerting's field names); the series carry Prometheus' snake_case recipient_group.
    rules = {
        rule["alert"]: rule
        for group in _load("edgepolicy-alerts.rules.yaml")["groups"]
        for rule in group["rules"]
    }
    for name in (
        "FinOpsPolicyThresholdExceeded",
        "FinOpsPolicyBudgetExceeded",
        "FinOpsPolicyIdleShutdown",
    ):
        labels = rules[name].get("labels") or {}
        assert labels.get("recipientGroup") == "{{ $labels.recipient_group }}", name
