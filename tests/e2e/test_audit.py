"""End to end: `edgepolicy audit` against the real kube-apiserver.

Objects are stored without the webhook (none is registered in this module), as workloads
admitted before a policy existed would be. The audit reads them in pages, decides them with a
real OPA, and (with --interval, or through its recorder) writes each FinOpsPolicy's status
through the status subresource and counted Events, as the ServiceAccount of
deploy/components/audit with exactly its permissions.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    ASSETS,
    BIN,
    EDGEPOLICY,
    ROOT,
    Kubectl,
    compliant,
    controlplane,
    eventually,
    hpa,
    over_budget,
    seed_policy,
    token_kubeconfig,
)

from edgepolicy import audit_records, kube
from edgepolicy.audit_recorder import AuditRecorder
from edgepolicy.auditing import audit_objects
from edgepolicy.cluster_inventory import FINOPS_POLICIES, list_collection, list_workloads
from edgepolicy.kube import ApiResponse, KubeApi
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OpaProcess
from edgepolicy.validated_policies import validate_policies

pytestmark = pytest.mark.e2e

SETTINGS = ASSETS / "settings.yaml"  # model.quantization warn, finops.replicas dryrun
AUDIT_OVERLAY = ASSETS / "audit-overlay"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["EDGEPOLICY_OPA"] = str(BIN / "opa")
    return env


def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGEPOLICY), "audit", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def offenders(kubectl: Kubectl) -> str:
    """A namespace with the seed policy, an over-budget Deployment, a compliant one and an HPA
    scaling the compliant one beyond the policy's maxReplicas."""
    namespace = kubectl.create_namespace("audit-offenders")
    kubectl.apply(seed_policy(namespace), check=True)
    kubectl.apply(
        over_budget("too-big", namespace),
        compliant("fits", namespace),
        hpa("scaler", namespace, "fits", min_replicas=1, max_replicas=10, cpu=70),
        check=True,
    )
    return namespace


@pytest.fixture(scope="module")
def admin(kubectl: Kubectl) -> Iterator[KubeApi]:
    """The shared client, as the control plane's administrator."""
    api = kube.from_kubeconfig(kubectl.kubeconfig)
    yield api
    api.close()


# --- the command, once -------------------------------------------------------------------------


def test_audit_reports_stored_offenders_as_json_and_exits_1(
    kubectl: Kubectl, offenders: str
) -> None:
    result = _audit(
        "--kubeconfig", str(kubectl.kubeconfig), "--namespace", offenders,
        "--data", str(SETTINGS), "--page-size", "2", "-o", "json",
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_name = {(r["kind"], r["name"]): r for r in report["results"]}
    assert set(by_name) == {
        ("Deployment", "too-big"),
        ("Deployment", "fits"),
        ("HorizontalPodAutoscaler", "scaler"),
    }
    too_big = by_name[("Deployment", "too-big")]
    assert too_big["allowed"] is False
    assert too_big["file"] == f"apis/apps/v1/namespaces/{offenders}/deployments/too-big"
    assert {v["rule"] for v in too_big["violations"]} == {"finops.cpu", "finops.gpu-hours"}
    assert {v["policy"] for v in too_big["violations"]} == {
        f"{offenders}/edge-ai-inference-cost-policy"
    }
    # The HPA is judged against the workload it scales, found among the listed objects.
    scaler = by_name[("HorizontalPodAutoscaler", "scaler")]
    assert [v["rule"] for v in scaler["violations"]] == ["finops.hpa"]
    # ... and the workload against the HPAs scaling it, as at admission.
    assert [v["rule"] for v in by_name[("Deployment", "fits")]["violations"]] == ["finops.hpa"]
    assert report["summary"] == {"objects": 3, "denied": 3, "warned": 2}


def test_audit_of_compliant_namespace_exits_0_with_text(kubectl: Kubectl) -> None:
    namespace = kubectl.create_namespace("audit-clean")
    kubectl.apply(seed_policy(namespace), compliant("fits", namespace), check=True)

    result = _audit(
        "--kubeconfig", str(kubectl.kubeconfig), "--namespace", namespace, "--data", str(SETTINGS)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"WARN apis/apps/v1/namespaces/{namespace}/deployments/fits Deployment" in result.stdout
    assert "1 object(s) checked: 0 denied, 1 warned, 1 allowed" in result.stdout


def test_audit_fail_on_warn_exits_1(kubectl: Kubectl) -> None:
    namespace = kubectl.create_namespace("audit-clean")
    kubectl.apply(seed_policy(namespace), compliant("fits", namespace), check=True)

    result = _audit(
        "--kubeconfig", str(kubectl.kubeconfig), "--namespace", namespace,
        "--data", str(SETTINGS), "--fail-on-warn",
    )  # fmt: skip

    assert result.returncode == 1, result.stderr


def test_audit_applies_policies_from_files_and_the_cluster_copy_wins(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    namespace = kubectl.create_namespace("audit-files")
    kubectl.apply(over_budget("too-big", namespace), check=True)
    policy = seed_policy(namespace)
    policy["spec"].pop("optimizationRules")  # no model facts here: no model.quantization
    (tmp_path / "policy.yaml").write_text(json.dumps(policy))
    common = ["--kubeconfig", str(kubectl.kubeconfig), "--namespace", namespace, "-o", "json"]

    from_file = _audit(*common, "--policies", str(tmp_path))

    assert from_file.returncode == 1, from_file.stderr
    rules = {v["rule"] for v in json.loads(from_file.stdout)["results"][0]["violations"]}
    assert rules == {"finops.cpu", "finops.gpu-hours"}

    # The same policy stored in the cluster, with room for the CPU, replaces the file's.
    roomy = json.loads(json.dumps(policy))
    roomy["spec"]["costLimits"] = {"maxCPUCores": 64, "dailyGPUHours": 24, "maxMemoryGB": 64}
    kubectl.apply(roomy, check=True)

    from_cluster = _audit(*common, "--policies", str(tmp_path))

    assert from_cluster.returncode == 1, from_cluster.stderr
    [violation] = json.loads(from_cluster.stdout)["results"][0]["violations"]
    assert violation["rule"] == "finops.gpu-hours"
    assert "exceeds dailyGPUHours 24 of" in violation["message"]


def test_audit_junit_and_sarif(kubectl: Kubectl, offenders: str) -> None:
    common = ["--kubeconfig", str(kubectl.kubeconfig), "--namespace", offenders]

    junit = _audit(*common, "-o", "junit")
    sarif = _audit(*common, "-o", "sarif")

    assert junit.returncode == 1 and sarif.returncode == 1, junit.stderr + sarif.stderr
    failures = ElementTree.fromstring(junit.stdout).iter("failure")
    assert any("finops.cpu" in (f.get("message") or "") + (f.text or "") for f in failures)
    results = json.loads(sarif.stdout)["runs"][0]["results"]
    assert {"finops.cpu", "finops.gpu-hours", "finops.hpa"} <= {r["ruleId"] for r in results}


def test_audit_without_a_reachable_cluster_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("current-context: nowhere\n")

    result = _audit("--kubeconfig", str(config))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "kubeconfig" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# --- pagination --------------------------------------------------------------------------------


class _RecordingApi(KubeApi):
    """The shared client, remembering the paths it requested and the statuses it got;
    ``after_first_page`` (optional) runs once, after the first answer with a continue token."""

    def __init__(self, base: KubeApi, after_first_page: Callable[[], None] | None = None) -> None:
        self.__dict__.update(base.__dict__)
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self._after_first_page = after_first_page

    def request(
        self, method: str, path: str, *, timeout: float, body: Mapping[str, Any] | None = None
    ) -> ApiResponse:
        response = super().request(method, path, timeout=timeout, body=body)
        self.paths.append(path)
        self.statuses.append(response.status)
        if self._after_first_page is not None and b'"continue":"' in response.body:
            hook, self._after_first_page = self._after_first_page, None
            hook()
        return response


@pytest.fixture(scope="module")
def twelve(kubectl: Kubectl) -> str:
    """A namespace holding 12 Deployments."""
    namespace = kubectl.create_namespace("audit-pages")
    kubectl.apply(*(compliant(f"app-{n:02d}", namespace) for n in range(12)), check=True)
    return namespace


def test_list_reads_every_page(admin: KubeApi, twelve: str) -> None:
    api = _RecordingApi(admin)

    items = api.list_items(f"/apis/apps/v1/namespaces/{twelve}/deployments", timeout=10, limit=5)

    assert sorted(i["metadata"]["name"] for i in items) == [f"app-{n:02d}" for n in range(12)]
    assert len(api.paths) == 3
    assert "continue=" not in api.paths[0]
    assert all("limit=5&continue=" in path for path in api.paths[1:])


def _etcd(kubectl: Kubectl, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
    state = json.loads((kubectl.kubeconfig.parent / "controlplane" / "state.json").read_text())
    request = urllib.request.Request(
        f"{state['etcd_url']}/v3/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@pytest.fixture(scope="module")
def uncached(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """A second kube-apiserver on the control plane's etcd (as in any HA control plane), with
    its watch cache off: its lists read etcd, so a continue token into compacted history gets
    the 410 Gone a cached server only gives after its own compaction (every 5 minutes)."""
    cluster = controlplane.ControlPlane(kubectl.kubeconfig.parent)
    state = cluster.state()
    assert state is not None
    port = controlplane.free_port()
    binary = controlplane.find_binary("kube-apiserver", cluster.bin_dir)
    argv = [*cluster._apiserver_args(binary, state.etcd_url, port), "--watch-cache=false"]
    log = tmp_path_factory.mktemp("uncached") / "kube-apiserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_env())
    config = json.loads(kubectl.run("config", "view", "--raw", "-o", "json", check=True).stdout)
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = log.parent / "kubeconfig"
    path.write_text(json.dumps(config))
    api = kube.from_kubeconfig(path)
    try:

        def ready() -> None:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                assert api.request("GET", "/readyz", timeout=2).status == 200
            except kube.KubernetesApiError as error:
                raise AssertionError(str(error)) from error

        eventually(ready, timeout=90, interval=0.5)
        yield api
    finally:
        api.close()
        process.terminate()
        process.wait(timeout=30)


def test_expired_continue_token_restarts_the_list(
    kubectl: Kubectl, uncached: KubeApi, twelve: str
) -> None:
    def compact() -> None:
        # A write after the first page, then etcd compacts its history up to it: the continue
        # token now points into history that is gone.
        key = base64.b64encode(b"/edgepolicy-test/compaction").decode()
        written = _etcd(kubectl, "kv/put", {"key": key, "value": key})
        _etcd(kubectl, "kv/compaction", {"revision": written["header"]["revision"]})

    api = _RecordingApi(uncached, after_first_page=compact)

    items = api.list_items(f"/apis/apps/v1/namespaces/{twelve}/deployments", timeout=10, limit=5)

    assert 410 in api.statuses, api.statuses
    names = [i["metadata"]["name"] for i in items]
    assert sorted(names) == [f"app-{n:02d}" for n in range(12)]  # no page twice, none lost
    restart = api.statuses.index(410) + 1
    assert "continue=" not in api.paths[restart]


# --- recording: status and Events ----------------------------------------------------------------


def _events(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    result = kubectl.run(
        "get", "events.v1.events.k8s.io", "-n", namespace, "-o", "json", check=True
    )
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return [e for e in items if e.get("reason") == audit_records.EVENT_REASON]


def test_recorder_writes_status_and_counts_events(
    kubectl: Kubectl, admin: KubeApi, offenders: str
) -> None:
    from edgepolicy.data_files import load_data_files
    from edgepolicy.library import library_path

    policies = list_collection(admin, FINOPS_POLICIES, namespace=offenders)
    objects = list_workloads(admin, namespace=offenders, page_size=2)
    recorder = AuditRecorder(admin, instance="e2e", violations_limit=2)
    with OpaProcess(BIN / "opa", paths=[library_path()], data=load_data_files([SETTINGS])) as opa:
        client = OpaClient(opa.url, timeout=30)
        report = audit_objects(objects, policies=policies, decide=client.decide)
        client.close()
    found = audit_records.violations(report)
    first = recorder.record(found, policies, at=datetime(2026, 12, 6, 11, 0, tzinfo=UTC))
    second = recorder.record(found, policies, at=datetime(2026, 12, 6, 11, 1, tzinfo=UTC))

    assert first.errors == [] and second.errors == []
    stored = kubectl.get("finopspolicy", "edge-ai-inference-cost-policy", offenders)
    assert stored is not None
    status = stored["status"]
    assert status["auditTimestamp"] == "2026-12-06T11:01:00Z"
    assert status["totalViolations"] == len(found) > 2
    assert len(status["violations"]) == 2  # --violations-limit
    assert status["violations"][0] == {
        "kind": found[0].kind,
        "namespace": offenders,
        "name": found[0].name,
        "rule": found[0].rule,
        "message": found[0].message,
        "enforcementAction": found[0].enforcement_action,
    }
    assert stored["spec"] == seed_policy(offenders)["spec"]  # the status subresource only
    events = _events(kubectl, offenders)
    assert first.events_created == len(found) == len(events)
    assert second.events_created == 0 and second.events_counted == len(found)
    assert {e["series"]["count"] for e in events} == {2}
    cpu = [e for e in events if e["note"].startswith("finops.cpu")]
    assert len(cpu) == 1
    assert cpu[0]["type"] == "Warning"
    assert cpu[0]["regarding"]["kind"] == "Deployment"
    assert cpu[0]["regarding"]["name"] == "too-big"
    assert (
        cpu[0]["regarding"]["uid"]
        == kubectl.get("deployment", "too-big", offenders)["metadata"]["uid"]
    )

    # Within the refresh, a lasting finding is counted in memory only: no write.
    third = recorder.record(found, policies, at=datetime(2026, 12, 6, 11, 2, tzinfo=UTC))
    assert third.events_deferred == len(found) and third.events_counted == 0
    assert {e["series"]["count"] for e in _events(kubectl, offenders)} == {2}

    # A new recorder (a restarted audit) finds the Events by name and counts on at once.
    fourth = AuditRecorder(admin, instance="e2e").record(
        found, policies, at=datetime(2026, 12, 6, 11, 3, tzinfo=UTC)
    )
    assert fourth.events_created == 0 and fourth.events_counted == len(found)
    assert {e["series"]["count"] for e in _events(kubectl, offenders)} == {3}

    # Past the refresh, the count kept in memory is written.
    refreshed = AuditRecorder(admin, instance="e2e", event_refresh=0.0)
    refreshed.record(found, policies, at=datetime(2026, 12, 6, 11, 4, tzinfo=UTC))
    refreshed.record(found, policies, at=datetime(2026, 12, 6, 11, 5, tzinfo=UTC))
    events = _events(kubectl, offenders)
    assert {e["series"]["count"] for e in events} == {5}
    assert {e["series"]["lastObservedTime"] for e in events} == {"2026-12-06T11:05:00.000000Z"}

    # An Event the API server dropped (its event TTL) is reported anew.
    gone = events[0]["metadata"]["name"]
    kubectl.run("delete", "events.v1.events.k8s.io", gone, "-n", offenders, check=True)
    again = refreshed.record(found, policies, at=datetime(2026, 12, 6, 11, 6, tzinfo=UTC))
    assert again.events_created == 1 and again.events_counted == len(found) - 1
    assert again.errors == []
    recreated = [e for e in _events(kubectl, offenders) if e["metadata"]["name"] == gone]
    assert len(recreated) == 1 and "series" not in recreated[0]


# --- the in-cluster loop, as the shipped ServiceAccount -----------------------------------------


def _metrics(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return str(response.read().decode())


def test_interval_mode_records_status_events_and_metrics_with_shipped_rbac(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    namespace = kubectl.create_namespace("audit-loop")
    kubectl.apply(seed_policy(namespace), over_budget("too-big", namespace), check=True)
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    kubectl.run("apply", "-f", str(ROOT / "deploy/components/audit/rbac.yaml"), check=True)
    config = token_kubeconfig(kubectl, "edgepolicy-system", "edgepolicy-audit", tmp_path)
    port = controlplane.free_port()
    log = tmp_path / "audit.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(EDGEPOLICY), "audit", "--kubeconfig", str(config), "--data", str(SETTINGS),
                "--interval", "1s", "--metrics-host", "127.0.0.1",
                "--metrics-port", str(port), "--page-size", "3",
            ],
            stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
        )  # fmt: skip
    try:

        def counted_twice() -> dict[str, Any]:
            assert process.poll() is None, log.read_text()
            events = _events(kubectl, namespace)
            assert events and all(e.get("series", {}).get("count", 1) >= 2 for e in events), (
                log.read_text()
            )
            return {"events": events}

        eventually(counted_twice, timeout=60, interval=0.5)
        policy = kubectl.get("finopspolicy", "edge-ai-inference-cost-policy", namespace)
        assert policy is not None
        assert policy["status"]["totalViolations"] >= 2
        assert {v["rule"] for v in policy["status"]["violations"]} >= {
            "finops.cpu",
            "finops.gpu-hours",
        }
        body = _metrics(port)
        expected = (
            'edgepolicy_audit_violations{enforcement_action="deny",'
            f'policy="{namespace}/edge-ai-inference-cost-policy",recipient_group="finops-team-edge",'
            'rule="finops.cpu",severity="CRITICAL"} 1.0'
        )
        assert expected in body, body
        assert "edgepolicy_audit_last_run_timestamp_seconds " in body
        assert "edgepolicy_audit_run_duration_seconds_count" in body
        assert 'edgepolicy_audit_errors_total{stage="record"}' not in body, log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(timeout=15)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_audit_component_is_accepted_by_server_dry_run(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    result = kubectl.run("apply", "--dry-run=server", "-k", str(AUDIT_OVERLAY))

    assert result.returncode == 0, result.stderr
    assert "deployment.apps/edgepolicy-audit" in result.stdout
    assert "clusterrole.rbac.authorization.k8s.io/edgepolicy-audit" in result.stdout


def test_interval_mode_with_opa_url_labels_findings_of_policies_in_opa_data(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    # As deployed: the audit asks an OPA whose data (a bundle's) holds the policy; the cluster
    # has no FinOpsPolicy object in this namespace, so there is no status to write, but the
    # metric still carries the policy's alert routing.
    from edgepolicy.data_files import load_data_files
    from edgepolicy.library import library_path
    from edgepolicy.policy_data import policies_to_data

    namespace = kubectl.create_namespace("audit-bundle")
    kubectl.apply(over_budget("too-big", namespace), check=True)
    data = load_data_files([SETTINGS])
    data["edgepolicy"]["policies"] = policies_to_data(validate_policies([seed_policy(namespace)]))
    port = controlplane.free_port()
    log = tmp_path / "audit.log"
    with OpaProcess(BIN / "opa", paths=[library_path()], data=data) as opa, log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(EDGEPOLICY), "audit", "--kubeconfig", str(kubectl.kubeconfig),
                "--namespace", namespace, "--opa-url", opa.url, "--interval", "1s",
                "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
            ],
            stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
        )  # fmt: skip
        try:
            expected = (
                'edgepolicy_audit_violations{enforcement_action="deny",'
                f'policy="{namespace}/edge-ai-inference-cost-policy",'
                'recipient_group="finops-team-edge",rule="finops.gpu-hours",'
                'severity="CRITICAL"} 1.0'
            )

            def labelled() -> None:
                assert process.poll() is None, log.read_text()
                try:
                    body = _metrics(port)
                except OSError as error:
                    raise AssertionError(str(error)) from error
                assert expected in body, body

            eventually(labelled, timeout=60, interval=0.5)
            assert {e["regarding"]["name"] for e in _events(kubectl, namespace)} == {"too-big"}
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            code = process.wait(timeout=15)
    assert code == 0, log.read_text()
