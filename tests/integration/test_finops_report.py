"""`edgepolicy finops report` against a real Prometheus holding a week of the exporters' series
with a known shape (generated, backfilled with promtool): exact GPU-hours, budgets, idle
periods, the planted anomaly and the planted budget crossing.

The week (30 s scrapes) in namespace ``ai``:
- ``train-a``, ``train-b`` (team=vision, tier=prod; policy ``ai/training``, budget 20 GPU-h a
  day, idle threshold 30 min): 2 GPUs each, Running 06:00-12:00 every day: 24 GPU-h a day.
  On day 5 ``train-b`` also runs 12:00-14:00 (+4 GPU-h: the anomaly). ``train-a`` holds its
  GPUs at 0% on day 3 from 07:00 to 09:00 (an idle period) and ``train-b`` on day 4 from 08:00
  to 08:20 (shorter than the threshold). CPU 1.5 and 0.5 cores, memory 2 and 1 GiB, limits 2
  cores and 4 GiB each.
- ``train-dev`` (team=vision, tier=dev) and ``other/train-x`` (team=vision) hold GPUs all day:
  not selected (NotIn, another namespace).
- ``grow-0`` .. ``grow-6`` (app=batch; policy ``ai/growing``, budget 100): ``grow-k`` runs
  06:00-12:00 with 2 GPUs from day k on, so day d holds 12 (d + 1) GPU-h: 96 the day after the
  week, then 108 (> 100) on the second day.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_support import OpenMetricsWriter, PrometheusServer

from edgepolicy import cli

STEP = 30
DAY = 86400
GIB = 2**30
NOW = datetime.now(UTC)
END = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
if timedelta(hours=1) > NOW - END:
    END -= timedelta(days=1)
START = END - timedelta(days=7)
T0 = int(START.timestamp())
T1 = int(END.timestamp())


class Pod:
    """A pod of the planted week: its labels, GPUs, and when it runs and idles."""

    def __init__(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        *,
        gpus: int,
        runs: Any,
        idle: Any = lambda t: False,
        cpu: float = 0.0,
        memory_gib: float = 0.0,
        first_day: int = 0,
    ) -> None:
        self.namespace, self.name, self.labels = namespace, name, labels
        self.gpus, self.runs, self.idle = gpus, runs, idle
        self.cpu, self.memory = cpu, memory_gib * GIB
        self.first = T0 + first_day * DAY

    def times(self) -> range:
        return range(self.first, T1, STEP)

    @property
    def ids(self) -> dict[str, str]:
        return {"namespace": self.namespace, "pod": self.name}


def _clock(t: int) -> tuple[int, int]:
    """(day of the week, second of the day) of ``t``."""
    return (t - T0) // DAY, (t - T0) % DAY


def _between(t: int, start_hour: float, end_hour: float) -> bool:
    return start_hour * 3600 <= _clock(t)[1] < end_hour * 3600


def _morning(t: int) -> bool:
    return _between(t, 6, 12)


PODS = [
    Pod(
        "ai",
        "train-a",
        {"team": "vision", "tier": "prod"},
        gpus=2,
        runs=_morning,
        idle=lambda t: _clock(t)[0] == 2 and _between(t, 7, 9),
        cpu=1.5,
        memory_gib=2,
    ),
    Pod(
        "ai",
        "train-b",
        {"team": "vision", "tier": "prod"},
        gpus=2,
        runs=lambda t: _morning(t) or (_clock(t)[0] == 4 and _between(t, 12, 14)),
        idle=lambda t: _clock(t)[0] == 3 and _between(t, 8, 8 + 20 / 60),
        cpu=0.5,
        memory_gib=1,
    ),
    Pod("ai", "train-dev", {"team": "vision", "tier": "dev"}, gpus=1, runs=lambda t: True),
    Pod("other", "train-x", {"team": "vision"}, gpus=1, runs=lambda t: True),
    *(
        Pod("ai", f"grow-{k}", {"app": "batch"}, gpus=2, runs=_morning, first_day=k)
        for k in range(7)
    ),
]

POLICIES = [
    {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "training", "namespace": "ai"},
        "spec": {
            "targetWorkloadSelector": {
                "matchLabels": {"team": "vision"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["dev"]}],
            },
            "costLimits": {"dailyGPUHours": 20, "maxCPUCores": 4, "maxMemoryGB": 2.5},
            "optimizationRules": {"idleShutdownThresholdMinutes": 30},
        },
    },
    {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "growing", "namespace": "ai"},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": {"app": "batch"}},
            "costLimits": {"dailyGPUHours": 100},
        },
    },
]


def write_week(writer: OpenMetricsWriter) -> None:
    """The exporters' series of PODS."""
    writer.family("kube_pod_labels")
    for pod in PODS:
        labels = {**pod.ids, **{f"label_{k}": v for k, v in pod.labels.items()}}
        writer.series(labels, ((t, 1) for t in pod.times()))
    writer.family("kube_pod_container_resource_limits")
    for pod in PODS:
        for resource, unit, value in (
            ("nvidia_com_gpu", "integer", pod.gpus),
            ("cpu", "core", 2),
            ("memory", "byte", 4 * GIB),
        ):
            labels = {**pod.ids, "container": "main", "resource": resource, "unit": unit}
            writer.series(labels, ((t, value) for t in pod.times()))
    writer.family("kube_pod_status_phase")
    for pod in PODS:
        writer.series({**pod.ids, "phase": "Running"}, ((t, int(pod.runs(t))) for t in pod.times()))
    writer.family("container_cpu_usage_seconds_total")
    for pod in PODS:
        writer.series(
            {**pod.ids, "container": "main"},
            ((t, pod.cpu * (t - pod.first)) for t in pod.times()),
        )
    writer.family("container_memory_working_set_bytes")
    for pod in PODS:
        writer.series({**pod.ids, "container": "main"}, ((t, pod.memory) for t in pod.times()))
    writer.family("DCGM_FI_DEV_GPU_UTIL")
    for pod in PODS:
        for gpu in range(pod.gpus):
            writer.series(
                {**pod.ids, "gpu": str(gpu), "UUID": f"GPU-{pod.name}-{gpu}"},
                ((t, 0 if pod.idle(t) or not pod.runs(t) else 80) for t in pod.times()),
            )


@pytest.fixture(scope="module")
def prometheus(prometheus_factory: Any) -> PrometheusServer:
    server: PrometheusServer = prometheus_factory(write_week)
    return server


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policies") / "policies.yaml"
    path.write_text(yaml.safe_dump_all(POLICIES))
    return path


def report(
    capsys: pytest.CaptureFixture[str], prometheus: PrometheusServer, policies: Path, *extra: str
) -> dict[str, Any]:
    code = cli.main(
        [
            "finops", "report", "--prometheus", prometheus.url, "--policies", str(policies),
            "--at", END.isoformat(), "-o", "json", *extra,
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


@pytest.fixture(scope="module")
def week(prometheus: PrometheusServer, policies: Path) -> Iterator[dict[str, Any]]:
    """The 7-day report, by policy."""
    out = io.StringIO()  # module scope: no capsys
    with contextlib.redirect_stdout(out):
        code = cli.main(
            [
                "finops", "report", "--prometheus", prometheus.url, "--policies",
                str(policies), "--at", END.isoformat(), "--window", "7d", "-o", "json",
            ]
        )  # fmt: skip
    assert code == 0
    document = json.loads(out.getvalue())
    yield {policy["policy"]: policy for policy in document["policies"]}


def test_gpu_hours_are_exact_per_day_and_in_total(week: dict[str, Any]) -> None:
    training = week["ai/training"]
    assert [pod["pod"] for pod in training["pods"]] == ["train-a", "train-b"]
    assert training["gpuHours"] == 7 * 24 + 4
    assert [day["gpuHours"] for day in training["days"]] == [24, 24, 24, 24, 28, 24, 24]
    assert training["dailyGPUHours"] == 20
    assert training["gpuHoursPerDay"] == 172 / 7  # a JSON number as exact as a float gets
    assert training["budgetExceeded"] is True
    assert {pod["pod"]: pod["gpuHours"] for pod in training["pods"]} == {
        "train-a": 84,
        "train-b": 88,
    }
    growing = week["ai/growing"]
    assert [day["gpuHours"] for day in growing["days"]] == [12, 24, 36, 48, 60, 72, 84]
    assert [day["budgetExceeded"] for day in growing["days"]] == [False] * 7
    assert growing["budgetExceeded"] is False


def test_one_day_window_against_the_budget(
    capsys: pytest.CaptureFixture[str], prometheus: PrometheusServer, policies: Path
) -> None:
    document = report(capsys, prometheus, policies, "--no-forecast")
    by_policy = {policy["policy"]: policy for policy in document["policies"]}
    assert by_policy["ai/training"]["gpuHours"] == 24
    assert by_policy["ai/training"]["gpuHoursPerDay"] == 24
    assert by_policy["ai/training"]["budgetExceeded"] is True
    assert by_policy["ai/growing"]["gpuHours"] == 84
    assert by_policy["ai/growing"]["budgetExceeded"] is False


def test_cpu_and_memory_use_against_limits_and_maxima(week: dict[str, Any]) -> None:
    training = week["ai/training"]
    assert training["cpuCores"] == {
        "p50": 2, "p95": 2, "max": 2, "limit": 4, "policyMax": 4, "exceedsPolicyMax": False,
    }  # fmt: skip
    assert training["memoryGiB"] == {
        "p50": 3, "p95": 3, "max": 3, "limit": 8, "policyMax": 2.5, "exceedsPolicyMax": True,
    }  # fmt: skip
    pods = {pod["pod"]: pod for pod in training["pods"]}
    assert pods["train-a"]["cpuCores"] == {"p50": 1.5, "p95": 1.5, "max": 1.5, "limit": 2}
    assert pods["train-b"]["memoryGiB"] == {"p50": 1, "p95": 1, "max": 1, "limit": 4}


def test_gpu_utilization(week: dict[str, Any]) -> None:
    # While held or not, the GPUs report 80% running and 0 otherwise: 6 h of 24 at 80%, less
    # the planted idle hours, averaged over the week.
    utilization = week["ai/training"]["gpuUtilizationPercent"]
    assert 0 < utilization < 80


def test_idle_periods_longer_than_the_threshold(week: dict[str, Any]) -> None:
    training = week["ai/training"]
    assert training["idleShutdownThresholdMinutes"] == 30
    day3 = START + timedelta(days=2)
    assert training["idlePeriods"] == [
        {
            "namespace": "ai",
            "pod": "train-a",
            "start": (day3 + timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (day3 + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "minutes": 120,
            "ongoing": False,
        }
    ]


def test_the_planted_anomaly_is_found(week: dict[str, Any]) -> None:
    day5 = START + timedelta(days=4)
    hours = {(day5 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (13, 14)}
    gpu = [a for a in week["ai/training"]["anomalies"] if a["series"] == "gpuHours"]
    assert {a["hourEnding"] for a in gpu} & hours, gpu
    assert all(a["hourEnding"].startswith(day5.strftime("%Y-%m-%d")) for a in gpu), gpu


def test_the_planted_budget_crossing_is_forecast(week: dict[str, Any]) -> None:
    forecast = week["ai/growing"]["forecast"]["gpuHours"]
    assert forecast["seasonality"] == ["daily"]  # one week of history: no weekly season yet
    means = [day["mean"] for day in forecast["days"]]
    assert means[:2] == [pytest.approx(96, abs=0.5), pytest.approx(108, abs=0.5)]
    assert forecast["budgetExceededOn"] == (END + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert all(day["lower"] <= day["mean"] <= day["upper"] for day in forecast["days"])
    # The stable policy is forecast to stay over its budget from the first day.
    training = week["ai/training"]["forecast"]["gpuHours"]
    assert training["budgetExceededOn"] == (END + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_html_report_is_one_self_contained_file(
    capsys: pytest.CaptureFixture[str], prometheus: PrometheusServer, policies: Path
) -> None:
    code = cli.main(
        [
            "finops", "report", "--prometheus", prometheus.url, "--policies", str(policies),
            "--at", END.isoformat(), "--window", "7d", "-o", "html",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("<!DOCTYPE html>")
    assert out.count("<svg") >= 4  # use against budget and CPU, per policy
    assert "ai/training" in out and "ai/growing" in out
    assert "forecast" in out
    assert "http://" not in out.replace("http://www.w3.org/2000/svg", "").replace(
        prometheus.url, ""
    )  # nothing loaded from elsewhere


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "3x"], "--window '3x': expected a duration"),
        (["--window", "90s"], "--window '90s': must be a positive number of whole minutes"),
        (["--window", "99999999999999w"], "--window '99999999999999w': too long"),
        (["--window", "600000w"], "--window '600000w': too long"),
        (["--history", "600000w"], "--history '600000w': too long"),
        (["--at", "yesterday"], "--at 'yesterday': expected an RFC 3339 time"),
        (["--at", "2026-12-01T00:00:00"], "give the time zone"),
    ],
)
def test_bad_input_is_one_clear_line(
    capsys: pytest.CaptureFixture[str],
    policies: Path,
    args: list[str],
    message: str,
) -> None:
    code = cli.main(
        ["finops", "report", "--prometheus", "http://127.0.0.1:9", "--policies", str(policies),
         *args]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_a_policy_given_twice_is_refused(
    capsys: pytest.CaptureFixture[str], policies: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again.yaml"
    again.write_text(policies.read_text())
    code = cli.main(
        ["finops", "report", "--prometheus", "http://127.0.0.1:9", "--policies", str(policies),
         str(again)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "duplicate FinOpsPolicy ai/" in err and "Traceback" not in err


def test_prometheus_errors_name_the_url_and_query(
    capsys: pytest.CaptureFixture[str], prometheus: PrometheusServer, policies: Path
) -> None:
    unreachable = cli.main(
        ["finops", "report", "--prometheus", "http://127.0.0.1:9", "--policies", str(policies)]
    )
    err = capsys.readouterr().err
    assert unreachable == 2
    assert "http://127.0.0.1:9/api/v1/query" in err and "cannot reach Prometheus" in err
    not_prometheus = cli.main(
        ["finops", "report", "--prometheus", f"{prometheus.url}/nothing-here",
         "--policies", str(policies)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert not_prometheus == 2
    assert f"{prometheus.url}/nothing-here/api/v1/query" in err and "HTTP 404" in err
    bad_url = cli.main(["finops", "report", "--prometheus", "prometheus:9090", "--policies",
                        str(policies)])  # fmt: skip
    assert bad_url == 2
    assert "Prometheus URL 'prometheus:9090'" in capsys.readouterr().err
