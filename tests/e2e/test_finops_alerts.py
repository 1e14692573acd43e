"""End to end: the shipped alerting rules in a real Prometheus turn the audit's and the idle
loop's metrics (served by their real exporters, scraped) into alerts, and a real Alertmanager
routes them by `severity` and `recipient_group` to the receiver of the team the policy names,
here a webhook this test runs.

The rules wait (`for: 5m`, `15m`, `1m`) before firing. Rather than waiting, the TSDB is
backfilled with the metrics and their `ALERTS_FOR_STATE` series of the last twenty minutes, as a
Prometheus that had been running would have written them: on start, Prometheus restores each
pending alert's `for` state from them (`--rules.alert.for-grace-period=1s`) and fires at once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from backfilled_prometheus import Series, free_port, openmetrics, prometheus, wait_ready
from e2e_support import BIN, ROOT
from prometheus_client import CollectorRegistry, start_http_server

from edgepolicy import audit_records
from edgepolicy.audit_metrics import AuditMetrics
from edgepolicy.finops_metrics import BudgetUse, FinopsMetrics
from edgepolicy.idle_shutdown import IdleOutcome

pytestmark = pytest.mark.e2e

RULES = ROOT / "deploy" / "monitoring" / "edgepolicy-alerts.rules.yaml"
POLICY = {
    "apiVersion": "policy.apexlogic.com/v1alpha1",
    "kind": "FinOpsPolicy",
    "metadata": {"name": "inference", "namespace": "ai"},
    "spec": {
        "targetWorkloadSelector": {"matchLabels": {"app": "inference"}},
        "alerting": {
            "thresholdExceeded": {"severity": "critical", "recipientGroup": "finops-team-edge"},
            "idleShutdown": {"severity": "info", "recipientGroup": "mlops-team"},
        },
    },
}
ALERTMANAGER_CONFIG = """\
route:
  receiver: nobody
  group_by: [alertname, policy]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"', 'recipient_group="finops-team-edge"']
      receiver: finops-team-edge
    - matchers: ['severity="info"', 'recipient_group="mlops-team"']
      receiver: mlops-team
receivers:
  - name: nobody
  - name: finops-team-edge
    webhook_configs: [{url: "http://127.0.0.1:{port}/finops-team-edge"}]
  - name: mlops-team
    webhook_configs: [{url: "http://127.0.0.1:{port}/mlops-team"}]
"""


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: int) -> Iterator[str]:
    config = tmp_path / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG.replace("{port}", str(receiver)))
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(BIN / "alertmanager"),
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/-/ready", process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _serve(registry: CollectorRegistry) -> tuple[str, Any]:
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    return f"127.0.0.1:{port}", server


def _history(
    alert: str, labels: Mapping[str, str], metric: str, value: float, now: float
) -> list[Series]:
    """Twenty minutes of ``metric`` and of the alert's `for` state (active since then: longer
    than the longest `for`, 15m). The state carries the alert's labels: the series' and the
    rule's (``recipientGroup``), else Prometheus does not restore it."""
    times = [now - 1200 + 15 * step for step in range(81)]
    alert_labels = {**labels, "recipientGroup": labels["recipient_group"], "alertname": alert}
    return [
        Series(metric, labels, [(t, value) for t in times]),
        Series("ALERTS_FOR_STATE", alert_labels, [(t, now - 1200) for t in times]),
    ]


def test_policy_alerts_reach_the_policy_recipient_group(
    tmp_path: Path, alertmanager: str, receiver: int
) -> None:
    audit = AuditMetrics()
    found = [
        audit_records.AuditViolation(
            policy="ai/inference",
            rule="finops.cpu",
            message="12 cores > 8",
            enforcement_action="deny",
            api_version="apps/v1",
            kind="Deployment",
            namespace="ai",
            name="too-big",
            uid="u1",
        )
    ]
    routes = {"ai/inference": audit_records.alert_route(POLICY)}
    audit.completed(
        audit_records.violation_counts(found, routes), started=time.time(), seconds=1.0, objects=1
    )
    finops = FinopsMetrics()
    idle = IdleOutcome(
        kind="Deployment",
        namespace="ai",
        name="idle",
        policy="ai/inference",
        threshold_minutes=30,
        idle_minutes=45,
        action="deny",
        severity="info",
        recipient_group="mlops-team",
        result="scaled",
        replicas=2,
    )
    budget = BudgetUse("ai/inference", "critical", "finops-team-edge", Decimal(30), Decimal(18))
    finops.completed([idle], [budget], started=time.time())
    audit_target, audit_server = _serve(audit.registry)
    finops_target, finops_server = _serve(finops.registry)
    now = time.time() - 2
    job = {"job": "edgepolicy"}
    violation = {
        **job,
        "instance": audit_target,
        "policy": "ai/inference",
        "rule": "finops.cpu",
        "severity": "critical",
        "recipient_group": "finops-team-edge",
        "enforcement_action": "deny",
    }
    budget_labels = {
        **job,
        "instance": finops_target,
        "policy": "ai/inference",
        "severity": "critical",
        "recipient_group": "finops-team-edge",
    }
    idle_labels = {
        **job,
        "instance": finops_target,
        "policy": "ai/inference",
        "namespace": "ai",
        "workload_kind": "Deployment",
        "workload": "idle",
        "severity": "info",
        "recipient_group": "mlops-team",
        "enforcement_action": "deny",
    }
    history = [
        *_history(
            "FinOpsPolicyThresholdExceeded", violation, "edgepolicy_audit_violations", 1, now
        ),
        *_history(
            "FinOpsPolicyBudgetExceeded",
            budget_labels,
            "edgepolicy_finops_gpu_hours_last_24h",
            30,
            now,
        ),
        Series(
            "edgepolicy_finops_daily_gpu_hours",
            budget_labels,
            [(now - 1200 + 15 * step, 18) for step in range(81)],
        ),
        *_history(
            "FinOpsPolicyIdleShutdown", idle_labels, "edgepolicy_finops_idle_shutdown", 1, now
        ),
    ]
    try:
        with prometheus(
            tmp_path,
            openmetrics(history),
            rule_files=[RULES],
            alertmanager=alertmanager,
            scrape=[audit_target, finops_target],
            extra=["--rules.alert.for-grace-period=1s"],
        ) as running:
            deliveries = _wait_for(
                {
                    "FinOpsPolicyThresholdExceeded",
                    "FinOpsPolicyBudgetExceeded",
                    "FinOpsPolicyIdleShutdown",
                },
                running.log,
            )
    finally:
        audit_server.shutdown()
        finops_server.shutdown()

    threshold_path, threshold = deliveries["FinOpsPolicyThresholdExceeded"]
    assert threshold_path == "/finops-team-edge"
    assert threshold["receiver"] == "finops-team-edge"
    assert threshold["status"] == "firing"
    labels = threshold["alerts"][0]["labels"]
    assert (labels["severity"], labels["recipient_group"]) == ("critical", "finops-team-edge")
    assert labels["recipientGroup"] == "finops-team-edge"
    assert (labels["policy"], labels["rule"]) == ("ai/inference", "finops.cpu")

    budget_path, budget_payload = deliveries["FinOpsPolicyBudgetExceeded"]
    assert budget_path == "/finops-team-edge"
    assert budget_payload["alerts"][0]["labels"]["severity"] == "critical"
    assert budget_payload["alerts"][0]["labels"]["recipientGroup"] == "finops-team-edge"

    idle_path, idle_payload = deliveries["FinOpsPolicyIdleShutdown"]
    assert idle_path == "/mlops-team"
    idle_alert = idle_payload["alerts"][0]["labels"]
    assert (idle_alert["severity"], idle_alert["recipient_group"]) == ("info", "mlops-team")
    assert idle_alert["recipientGroup"] == "mlops-team"
    assert idle_alert["workload"] == "idle"


def _wait_for(alerts: set[str], log: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    deadline = time.monotonic() + 90
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    while time.monotonic() < deadline and set(found) != alerts:
        for path, payload in list(_Receiver.received):
            name = payload.get("groupLabels", {}).get("alertname")
            if name in alerts:
                found.setdefault(name, (path, payload))
        time.sleep(0.5)
    missing = alerts - set(found)
    assert not missing, f"not delivered: {sorted(missing)}\n{log.read_text()[-3000:]}"
    return found
