"""End to end: `edgepolicy finops idle` against the real kube-apiserver and a real Prometheus
backfilled with an idle period of known shape, deciding with a real OPA.

Two hours of series at 30 s: the pod of Deployment `idle` used its GPU until 61 minutes before
the judged moment, the pod of Deployment `busy` served requests until 3 minutes before it.
The policy's threshold is 30 minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from backfilled_prometheus import RunningPrometheus, Series, free_port, openmetrics, prometheus
from e2e_support import BIN, EDGEPOLICY, ROOT, Kubectl, deployment, token_kubeconfig
from prometheus_client.parser import text_string_to_metric_families

from edgepolicy.idle_shutdown import PREVIOUS_REPLICAS_ANNOTATION

pytestmark = pytest.mark.e2e

NAMESPACE = "finops-idle"
DRYRUN_NAMESPACE = "finops-idle-dryrun"
LOOP_NAMESPACE = "finops-idle-loop"
THRESHOLD = 30


def _at() -> datetime:
    """The judged moment: a whole minute, recent enough for Prometheus' retention."""
    return (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)


AT = _at()


def _series(namespace: str) -> list[Series]:
    end = AT.timestamp()
    times = [end - 7200 + 30 * step for step in range(241)]  # two hours at 30 s, ending at AT
    series = []
    for app in ("idle", "busy"):
        pod = {"namespace": namespace, "pod": f"{app}-0"}
        series.append(Series("kube_pod_labels", {**pod, "label_app": app}, [(t, 1) for t in times]))
        series.append(
            Series("kube_pod_status_phase", {**pod, "phase": "Running"}, [(t, 1) for t in times])
        )
        gpu = {**pod, "container": "server", "resource": "nvidia_com_gpu", "unit": "integer"}
        series.append(Series("kube_pod_container_resource_limits", gpu, [(t, 1) for t in times]))
    idle_pod = {"namespace": namespace, "pod": "idle-0", "gpu": "0"}
    series.append(
        Series("DCGM_FI_DEV_GPU_UTIL", idle_pod, [(t, 50 if t < end - 3600 else 0) for t in times])
    )
    busy_pod = {"namespace": namespace, "pod": "busy-0", "gpu": "1"}
    series.append(Series("DCGM_FI_DEV_GPU_UTIL", busy_pod, [(t, 0) for t in times]))
    counter, requests = 0, []
    for t in times:
        if t <= end - 180:
            counter += 10
        requests.append((t, counter))
    series.append(
        Series("http_requests_total", {"namespace": namespace, "pod": "busy-0"}, requests)
    )
    return series


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    text = openmetrics([*_series(NAMESPACE), *_series(DRYRUN_NAMESPACE), *_series(LOOP_NAMESPACE)])
    with prometheus(tmp_path_factory.mktemp("prometheus"), text) as running:
        yield running


def _policy(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "serving", "namespace": namespace},
        "spec": {
            "targetWorkloadSelector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["idle", "busy"]}]
            },
            "costLimits": {"dailyGPUHours": 1},
            "optimizationRules": {"idleShutdownThresholdMinutes": THRESHOLD},
            "alerting": {
                "idleShutdown": {"severity": "info", "recipientGroup": "mlops-team"},
                "thresholdExceeded": {"severity": "critical", "recipientGroup": "finops-team-edge"},
            },
        },
    }


def _store(kubectl: Kubectl, namespace: str) -> None:
    kubectl.create_namespace(namespace)
    kubectl.apply(
        _policy(namespace),
        deployment("idle", namespace, replicas=2, labels={"app": "idle"}),
        deployment("busy", namespace, replicas=3, labels={"app": "busy"}),
        check=True,
    )


def _service_account(kubectl: Kubectl, directory: Path) -> Path:
    """A kubeconfig of the audit's ServiceAccount with exactly the RBAC of
    deploy/components/audit and deploy/components/finops-idle."""
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    for component in ("audit", "finops-idle"):
        kubectl.run(
            "apply", "-f", str(ROOT / f"deploy/components/{component}/rbac.yaml"), check=True
        )
    return token_kubeconfig(kubectl, "edgepolicy-system", "edgepolicy-audit", directory)


def _idle(
    kubectl: Kubectl, url: str, namespace: str, *extra: str, config: Path | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["EDGEPOLICY_OPA"] = str(BIN / "opa")
    done = subprocess.run(
        [
            str(EDGEPOLICY),
            "finops",
            "idle",
            "--prometheus",
            url,
            "--kubeconfig",
            str(kubectl.kubeconfig),
            "-n",
            namespace,
            "--at",
            AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "-o",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcomes: dict[str, Any] = {o["name"]: o for o in json.loads(done.stdout)["workloads"]}
    return outcomes


def _events(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    listed = kubectl.run("get", "events.events.k8s.io", "-n", namespace, "-o", "json", check=True)
    return [e for e in json.loads(listed.stdout)["items"] if e.get("reason") == "IdleShutdown"]


def test_idle_deployment_is_scaled_to_zero_and_the_busy_one_left(
    kubectl: Kubectl, telemetry: RunningPrometheus, tmp_path: Path
) -> None:
    _store(kubectl, NAMESPACE)
    config = _service_account(kubectl, tmp_path)  # the shipped RBAC is enough

    outcomes = _idle(kubectl, telemetry.url, NAMESPACE, config=config)

    idle, busy = outcomes["idle"], outcomes["busy"]
    assert idle["result"] == "scaled" and idle["action"] == "deny"
    # Idle since the look-back began (threshold + 10 minutes, left-open): 39 or 40 minutes.
    assert THRESHOLD < idle["idleMinutes"] <= THRESHOLD + 10
    assert (idle["policy"], idle["severity"], idle["recipientGroup"]) == (
        f"{NAMESPACE}/serving",
        "info",
        "mlops-team",
    )
    assert busy["result"] == "active" and busy["idleMinutes"] < 5
    stored = kubectl.get("deployment", "idle", NAMESPACE)
    assert stored is not None
    assert stored["spec"]["replicas"] == 0
    assert stored["metadata"]["annotations"][PREVIOUS_REPLICAS_ANNOTATION] == "2"
    assert kubectl.get("deployment", "busy", NAMESPACE)["spec"]["replicas"] == 3  # type: ignore[index]
    events = _events(kubectl, NAMESPACE)
    assert [e["regarding"]["name"] for e in events] == ["idle"]
    assert "idle" in events[0]["note"] and "2 replica(s)" in events[0]["note"]

    # The next run finds it held at zero (its alert stays) and writes nothing more.
    again = _idle(kubectl, telemetry.url, NAMESPACE, config=config)
    assert again["idle"]["result"] == "held" and again["idle"]["replicas"] == 0
    assert len(_events(kubectl, NAMESPACE)) == 1


def test_dryrun_only_reports(
    kubectl: Kubectl, telemetry: RunningPrometheus, tmp_path: Path
) -> None:
    _store(kubectl, DRYRUN_NAMESPACE)
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "edgepolicy:\n  settings:\n    enforcementActions:\n      finops.idle-shutdown: dryrun\n"
    )

    outcomes = _idle(kubectl, telemetry.url, DRYRUN_NAMESPACE, "--data", str(settings))

    assert outcomes["idle"]["result"] == "reported"
    assert outcomes["idle"]["action"] == "dryrun"
    stored = kubectl.get("deployment", "idle", DRYRUN_NAMESPACE)
    assert stored is not None and stored["spec"]["replicas"] == 2
    assert PREVIOUS_REPLICAS_ANNOTATION not in (stored["metadata"].get("annotations") or {})
    assert _events(kubectl, DRYRUN_NAMESPACE) == []

    # --dry-run reports whatever the rule's action (deny by default).
    forced = _idle(kubectl, telemetry.url, DRYRUN_NAMESPACE, "--dry-run")
    assert (forced["idle"]["result"], forced["idle"]["action"]) == ("reported", "dryrun")
    assert kubectl.get("deployment", "idle", DRYRUN_NAMESPACE)["spec"]["replicas"] == 2  # type: ignore[index]
    assert _events(kubectl, DRYRUN_NAMESPACE) == []


def test_finops_idle_component_is_accepted_by_server_dry_run(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    overlay = ROOT / "tests/e2e/assets/finops-idle-overlay"

    result = kubectl.run("apply", "--dry-run=server", "-k", str(overlay))

    assert result.returncode == 0, result.stderr
    assert "clusterrole.rbac.authorization.k8s.io/edgepolicy-finops-idle" in result.stdout
    rendered = yaml.safe_load_all(kubectl.run("kustomize", str(overlay), check=True).stdout)
    audit = next(
        o
        for o in rendered
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "edgepolicy-audit"
    )
    containers = {c["name"]: c for c in audit["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"audit", "opa", "finops-idle"}
    assert containers["finops-idle"]["args"][:2] == ["finops", "idle"]
    assert "--opa-url=http://127.0.0.1:8181" in containers["finops-idle"]["args"]


def test_interval_mode_publishes_the_alert_metrics(
    kubectl: Kubectl, telemetry: RunningPrometheus, tmp_path: Path
) -> None:
    _store(kubectl, LOOP_NAMESPACE)
    config = _service_account(kubectl, tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["EDGEPOLICY_OPA"] = str(BIN / "opa")
    log = tmp_path / "idle.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(EDGEPOLICY),
                "finops",
                "idle",
                "--prometheus",
                telemetry.url,
                "--kubeconfig",
                str(config),
                "-n",
                LOOP_NAMESPACE,
                "--interval",
                "2s",
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        metrics = _eventually_metrics(port, "edgepolicy_finops_idle_shutdown{", log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    idle = [s.labels for s in families["edgepolicy_finops_idle_shutdown"].samples]
    assert idle == [
        {
            "policy": f"{LOOP_NAMESPACE}/serving",
            "namespace": LOOP_NAMESPACE,
            "workload_kind": "Deployment",
            "workload": "idle",
            "severity": "info",
            "recipient_group": "mlops-team",
            "enforcement_action": "deny",
        }
    ]
    route = {
        "policy": f"{LOOP_NAMESPACE}/serving",
        "severity": "critical",
        "recipient_group": "finops-team-edge",
    }
    used = families["edgepolicy_finops_gpu_hours_last_24h"].samples
    budget = families["edgepolicy_finops_daily_gpu_hours"].samples
    assert [(s.labels, s.value) for s in budget] == [(route, 1.0)]
    # Two pods with one GPU each for the two hours of series: about 4 GPU-hours, over budget.
    assert [s.labels for s in used] == [route] and 3.5 <= used[0].value <= 4.5
    assert "scaled" in log.read_text() and "Traceback" not in log.read_text()


def _eventually_metrics(port: int, expected: str, log: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                text = answer.read().decode()
            if expected in text:
                return text
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no {expected} on /metrics:\n{log.read_text()[-3000:]}")
