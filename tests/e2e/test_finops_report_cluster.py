"""`edgepolicy finops report --kubeconfig`: the FinOpsPolicies stored in a real kube-apiserver,
measured in a real Prometheus (backfilled with a day of one pod's series)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e_support import ROOT, Kubectl

sys.path.insert(0, str(ROOT / "tests" / "integration"))
from prometheus_support import OpenMetricsWriter, PrometheusServer, backfill, steps  # noqa: E402

pytestmark = pytest.mark.e2e
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
NAMESPACE = "finops-report"


def _write(path: Path) -> None:
    start, end = END.timestamp() - 86400, END.timestamp() + 30
    ids = {"namespace": NAMESPACE, "pod": "llm-0"}
    with path.open("w") as out:
        writer = OpenMetricsWriter(out)
        writer.family("kube_pod_labels")
        writer.series({**ids, "label_app": "llm"}, ((t, 1) for t in steps(start, end, 30)))
        writer.family("kube_pod_container_resource_limits")
        labels = {**ids, "container": "main", "resource": "nvidia_com_gpu"}
        writer.series(labels, ((t, 2) for t in steps(start, end, 30)))
        writer.family("kube_pod_status_phase")
        writer.series({**ids, "phase": "Running"}, ((t, 1) for t in steps(start, end, 30)))
        writer.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    _write(workdir / "series.om.txt")
    backfill(workdir / "series.om.txt", workdir / "tsdb")
    with PrometheusServer(workdir / "tsdb", workdir) as server:
        yield server


def test_the_cluster_policies_are_measured(kubectl: Kubectl, prometheus: PrometheusServer) -> None:
    kubectl.create_namespace(NAMESPACE)
    policy = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "llm", "namespace": NAMESPACE},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
            "costLimits": {"dailyGPUHours": 40},
        },
    }
    kubectl.apply(policy, check=True)
    done = subprocess.run(
        [sys.executable, "-m", "edgepolicy", "finops", "report", "--prometheus", prometheus.url,
         "--kubeconfig", str(kubectl.kubeconfig), "--at", END.isoformat(), "--no-forecast",
         "-o", "json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    policies = {p["policy"]: p for p in json.loads(done.stdout)["policies"]}
    measured = policies[f"{NAMESPACE}/llm"]
    assert measured["gpuHours"] == 48  # 2 GPUs held for the whole day
    assert measured["dailyGPUHours"] == 40
    assert measured["budgetExceeded"] is True
    assert [pod["pod"] for pod in measured["pods"]] == ["llm-0"]
