"""`edgepolicy finops suggest` against a real Prometheus backfilled with two UTC days of
planted use, writing to a real Git repository.

Pods inference-a and inference-b use 1.5 and 2 cores all the time (p99 of the sum: 3.5), 3 GiB
each with one hour at 5 GiB on inference-a (peak of the sum: 8 GiB), and hold one GPU each while
Running: both all of day one (48 GPU-hours), inference-b only half of day two (36). The pause
container (cAdvisor's ``container="POD"`` under dockershim) is not the workload's use.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_support import OpenMetricsWriter, PrometheusServer, steps

from edgepolicy.cli import main

GIB = 2**30
DAY = 86400
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
PODS = (("inference-a", 1.5), ("inference-b", 2.0))
POLICY = """\
# Serving budget (reviewed monthly)
apiVersion: policy.apexlogic.com/v1alpha1
kind: FinOpsPolicy
metadata:
  name: inference
  namespace: ai
spec:
  targetWorkloadSelector:
    matchLabels:
      app: inference
  costLimits:
    dailyGPUHours: 72   # 3 GPUs all day
    maxCPUCores: 8
    maxMemoryGB: 32
"""


def _write(writer: OpenMetricsWriter) -> None:
    end = END.timestamp()
    start = end - 2 * DAY
    times = list(steps(start, end + 1, 60))  # two days at 60 s, the last sample at END

    writer.family("kube_pod_labels")
    for pod, _ in PODS:
        labels = {"namespace": "ai", "pod": pod, "label_app": "inference"}
        writer.series(labels, ((t, 1) for t in times))
    writer.family("container_cpu_usage_seconds_total")
    for pod, cores in PODS:
        labels = {"namespace": "ai", "pod": pod, "container": "server"}
        writer.series(labels, ((t, cores * (t - start)) for t in times))
        pause = {"namespace": "ai", "pod": pod, "container": "POD"}
        writer.series(pause, ((t, t - start) for t in times))
    writer.family("container_memory_working_set_bytes")
    for pod, _ in PODS:
        peak = pod == "inference-a"
        labels = {"namespace": "ai", "pod": pod, "container": "server"}
        writer.series(
            labels,
            ((t, (5 if peak and start + 3600 <= t < start + 7200 else 3) * GIB) for t in times),
        )
        pause = {"namespace": "ai", "pod": pod, "container": "POD"}
        writer.series(pause, ((t, GIB) for t in times))
    writer.family("kube_pod_container_resource_limits")
    for pod, _ in PODS:
        labels = {
            "namespace": "ai",
            "pod": pod,
            "container": "server",
            "resource": "nvidia_com_gpu",
            "unit": "integer",
        }
        writer.series(labels, ((t, 1) for t in times))
    writer.family("kube_pod_status_phase")
    for pod, _ in PODS:
        running_until = end + 1 if pod == "inference-a" else end - DAY / 2
        labels = {"namespace": "ai", "pod": pod, "phase": "Running"}
        writer.series(labels, ((t, 1 if t < running_until else 0) for t in times))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def test_suggest_from_backfilled_use(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prometheus_factory: Callable[[Callable[[OpenMetricsWriter], None]], PrometheusServer],
) -> None:
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "test@example.org")
    repo = tmp_path / "policies"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "inference.yaml").write_text(POLICY)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "policy")

    server = prometheus_factory(_write)
    code = main(
        [
            "finops",
            "suggest",
            "--prometheus",
            server.url,
            "--repo",
            str(repo),
            "--branch",
            "rightsize",
            "--window",
            "2d",
            "--at",
            END.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ]
    )

    assert code == 0
    message = _git(repo, "log", "-1", "--format=%B", "rightsize")
    assert (
        "dailyGPUHours 72 -> 60: peak daily use 48 GPU-hours over 2 days, plus 25% headroom"
        in message
    )
    assert "maxCPUCores 8 -> 4.4: p99 use 3.5 cores over 2 days, plus 25% headroom" in message
    assert "maxMemoryGB 32 -> 10: peak use 8 GiB over 2 days, plus 25% headroom" in message
    assert _git(repo, "show", "rightsize:inference.yaml") == (
        POLICY.replace("dailyGPUHours: 72 ", "dailyGPUHours: 60 ")
        .replace("maxCPUCores: 8", "maxCPUCores: 4.4")
        .replace("maxMemoryGB: 32", "maxMemoryGB: 10")
    )
