"""Property: a total exactly at its limit is allowed and one smallest step above is denied, for
every rule that compares (finops.cpu, finops.memory, finops.gpu-hours, finops.replicas,
finops.hpa), decided by the real OPA with the shipped Rego.

Random per-pod values are written in random Kubernetes spellings (m, n, u, plain decimals, k/M/G,
Ki/Mi/Gi, exponents with padded digits, spaces around them, pod-level limits); the expected
verdicts come from an exact model in Python using ``fractions.Fraction`` only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepolicy.decision import Decision
from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OpaProcess
from edgepolicy.validated_policies import validate_policies

pytestmark = pytest.mark.integration

NAMESPACE = "exact"
LABELS = {"app": "exact"}
NANO = Fraction(1, 10**9)
GIB = 2**30
HOURS = "finops.apexlogic.com/daily-active-hours"


@pytest.fixture(scope="module")
def opa() -> Iterator[OpaClient]:
    """One real OPA with the shipped Rego library for every example."""
    with OpaProcess(find_opa(), paths=[library_path()]) as server:
        client = OpaClient(server.url, timeout=30.0)
        try:
            yield client
        finally:
            client.close()


# --- exact spellings -----------------------------------------------------------------------


def _decimal_text(value: Fraction) -> str:
    """``value`` written exactly in plain decimal notation (it must have a finite expansion)."""
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
        assert places <= 60, f"{value} has no finite decimal expansion"
    digits = str(abs(value * 10**places).numerator).rjust(places + 1, "0")
    whole, fraction = digits[: len(digits) - places], digits[len(digits) - places :].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30}


def _spellings(value: Fraction) -> list[str]:
    """Exact Kubernetes spellings of the quantity ``value`` (in base units)."""
    spellings = [
        _decimal_text(value / Fraction(10) ** power) + suffix
        for suffix, power in _DECIMAL_SUFFIXES.items()
    ]
    spellings += [
        _decimal_text(value / 2**power) + suffix for suffix, power in _BINARY_SUFFIXES.items()
    ]
    for power in (-9, -3, -1, 2, 9):
        mantissa = _decimal_text(value / Fraction(10) ** power)
        spellings += [f"{mantissa}e{power}", f"{mantissa}E{power:+04d}"]  # e.g. 5E+002, 7E-009
    spellings += [f" {_decimal_text(value)}", f"{_decimal_text(value / 1000)}k "]
    plain = _decimal_text(value)
    if plain.startswith("0."):
        spellings.append(plain[1:])  # .25
    return spellings


def _gpu_spellings(gpus: int) -> list[str | int]:
    """Exact spellings of a whole number of GPUs, the JSON number among them."""
    return [*_spellings(Fraction(gpus)), gpus]


def _hours_spellings(hours: Fraction) -> list[str]:
    """Exact spellings of a number of hours in the annotation's plain decimal notation."""
    plain = _decimal_text(hours)
    spellings = [
        plain,
        f"+{plain}",
        f"{_decimal_text(hours * 1000)}e-3",
        f"{_decimal_text(hours / 100)}E+002",
    ]
    if plain.startswith("0."):
        spellings.append(plain[1:])
    return spellings


def _json_number(value: Fraction) -> int | float:
    """``value`` as the JSON number a policy carries: exact (checked), since limits reach OPA
    through Python's YAML/JSON floats, which keep up to 15 significant digits exactly."""
    if value.denominator == 1:
        return int(value)
    text = _decimal_text(value)
    number = float(text)
    assert Decimal(repr(number)) == Decimal(text), f"limit {text} is not exact as a float"
    return number


# --- the scenario and its exact model --------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A Deployment whose pods run containers with these exact limits, and a policy."""

    replicas: int
    cpu: tuple[Fraction, ...]  # cores per container
    memory: tuple[Fraction, ...]  # bytes per container
    gpus: tuple[int, ...]  # GPUs per container
    hours: Fraction  # daily active hours
    hours_spelling: str
    cpu_spellings: tuple[str, ...]
    memory_spellings: tuple[str, ...]
    gpu_spellings: tuple[str | int, ...]
    pod_level: bool  # cpu and memory as pod-level limits instead of per container
    min_replicas: int
    max_replicas: int
    target: int  # the policy's cpuUtilizationPercentage
    hpa_min: int
    hpa_max: int
    hpa_target: int
    limits: Mapping[str, Fraction]  # maxCPUCores, maxMemoryGB, dailyGPUHours


def _pods(s: Scenario) -> int:
    return max(s.replicas, s.max_replicas)


def _totals(s: Scenario) -> dict[str, Fraction]:
    pods = _pods(s)
    return {
        "maxCPUCores": pods * sum(s.cpu, Fraction(0)),
        "maxMemoryGB": pods * sum(s.memory, Fraction(0)) / GIB,
        "dailyGPUHours": pods * sum(s.gpus) * s.hours,
    }


def _expected_violations(s: Scenario) -> set[str]:
    """The rules the exact model says are broken."""
    rules = {
        "maxCPUCores": "finops.cpu",
        "maxMemoryGB": "finops.memory",
        "dailyGPUHours": "finops.gpu-hours",
    }
    broken = {rules[field] for field, total in _totals(s).items() if total > s.limits[field]}
    if not s.min_replicas <= s.replicas <= s.max_replicas:
        broken.add("finops.replicas")
    if s.hpa_min < s.min_replicas or s.hpa_max > s.max_replicas or s.hpa_target < s.target:
        broken.add("finops.hpa")
    return broken


def _manifests(s: Scenario) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The Deployment, the FinOpsPolicy and the HPA of scenario ``s``."""
    containers = []
    for i, gpu in enumerate(s.gpu_spellings):
        limits: dict[str, Any] = {"nvidia.com/gpu": gpu}
        if not s.pod_level:
            limits |= {"cpu": s.cpu_spellings[i], "memory": s.memory_spellings[i]}
        containers.append(
            {"name": f"c{i}", "image": "registry.example/model:1", "resources": {"limits": limits}}
        )
    pod_spec: dict[str, Any] = {"containers": containers}
    if s.pod_level:
        pod_spec["resources"] = {
            "limits": {"cpu": s.cpu_spellings[0], "memory": s.memory_spellings[0]}
        }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "inference", "namespace": NAMESPACE},
        "spec": {
            "replicas": s.replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS, "annotations": {HOURS: s.hours_spelling}},
                "spec": pod_spec,
            },
        },
    }
    policy = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "budget", "namespace": NAMESPACE},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": LABELS},
            "costLimits": {field: _json_number(limit) for field, limit in s.limits.items()},
            "autoScale": {
                "minReplicas": s.min_replicas,
                "maxReplicas": s.max_replicas,
                "cpuUtilizationPercentage": s.target,
            },
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "inference", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference"},
            "minReplicas": s.hpa_min,
            "maxReplicas": s.hpa_max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": s.hpa_target},
                    },
                }
            ],
        },
    }
    return deployment, policy, hpa


def _decide(client: OpaClient, s: Scenario) -> Decision:
    """The decision on the scenario's Deployment, its policy and HPA in the context."""
    deployment, policy, hpa = _manifests(s)
    review = admission_review(deployment, namespace_default=NAMESPACE)
    policies = validate_policies([policy], namespace_default=NAMESPACE)
    return client.decide(decision_input(review, policies=policies, workloads=[hpa]))


# --- strategies ------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random scenario whose totals sit exactly at the policy's limits."""
    count = draw(st.integers(1, 3))
    replicas = draw(st.integers(1, 8))
    cpu = tuple(
        Fraction(n, 10**9)
        for n in draw(st.lists(st.integers(1, 16 * 10**9), min_size=count, max_size=count))
    )
    # memory in thousandths of a GiB: 1.1Gi is 1181116006.4 bytes, not a whole number of bytes
    memory = tuple(
        Fraction(k * GIB, 1000)
        for k in draw(st.lists(st.integers(1, 64_000), min_size=count, max_size=count))
    )
    gpus = tuple(draw(st.lists(st.integers(0, 4), min_size=count, max_size=count)))
    if sum(gpus) == 0:
        gpus = (1, *gpus[1:])
    # daily active hours of each pod in (0, 24]; the budget (pods x GPUs x hours) may exceed 24
    hours = Fraction(draw(st.integers(1, 240_000)), 10_000)
    pod_level = draw(st.booleans())
    if pod_level:
        cpu, memory = (sum(cpu, Fraction(0)),), (sum(memory, Fraction(0)),)
    min_replicas = draw(st.integers(1, replicas))
    target = draw(st.integers(1, 99))
    scenario = Scenario(
        replicas=replicas,
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        hours=hours,
        hours_spelling=draw(st.sampled_from(_hours_spellings(hours))),
        cpu_spellings=tuple(draw(st.sampled_from(_spellings(value))) for value in cpu),
        memory_spellings=tuple(draw(st.sampled_from(_spellings(value))) for value in memory),
        gpu_spellings=tuple(draw(st.sampled_from(_gpu_spellings(g))) for g in gpus),
        pod_level=pod_level,
        min_replicas=min_replicas,
        max_replicas=replicas,
        target=target,
        hpa_min=min_replicas,
        hpa_max=replicas,
        hpa_target=target,
        limits={},
    )
    return replace(scenario, limits=_totals(scenario))


def _one_step_above(s: Scenario) -> dict[str, Scenario]:
    """Variants one smallest step above a limit, by rule: one nano-unit more of a limit, one
    nano-hour more a day, one replica more or less, one utilization percent less."""
    cpu = (s.cpu[0] + NANO, *s.cpu[1:])
    memory = (s.memory[0] + NANO, *s.memory[1:])
    variants = {
        "finops.cpu": replace(
            s, cpu=cpu, cpu_spellings=(f"{_decimal_text(cpu[0] * 10**9)}n", *s.cpu_spellings[1:])
        ),
        "finops.memory": replace(
            s,
            memory=memory,
            memory_spellings=(f"{_decimal_text(memory[0] * 10**9)}n", *s.memory_spellings[1:]),
        ),
        "finops.gpu-hours": replace(
            s, hours=s.hours + NANO, hours_spelling=_decimal_text(s.hours + NANO)
        ),
        "finops.replicas": replace(s, replicas=s.max_replicas + 1),
        "finops.hpa": replace(s, hpa_max=s.max_replicas + 1),
        "finops.hpa target": replace(s, hpa_target=s.target - 1),
    }
    variants["finops.replicas below"] = replace(s, replicas=s.min_replicas - 1)
    variants["finops.hpa below"] = replace(s, hpa_min=s.min_replicas - 1)
    return variants


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios())
def test_exactly_at_the_limit_is_allowed_one_step_above_is_denied(
    opa: OpaClient, scenario: Scenario
) -> None:
    at = _decide(opa, scenario)
    assert _expected_violations(scenario) == set()
    assert at.allowed, [f.message for f in at.violations]
    assert at.violations == ()
    for name, variant in _one_step_above(scenario).items():
        expected = _expected_violations(variant)
        assert name.split()[0] in expected, name
        decision = _decide(opa, variant)
        assert not decision.allowed, name
        assert {f.rule for f in decision.violations} == expected, (
            name,
            [f.message for f in decision.violations],
        )


def test_the_issue_cases_through_the_shipped_rego(opa: OpaClient) -> None:
    """3 x cpu 300m under 0.9 cores, 0.1 + 0.2 cores a pod, 3 x 1.1Gi under 3.3 GiB, 3 pods x 1 GPU
    x 24 h = 72 GPU-hours."""
    base = Scenario(
        replicas=3,
        cpu=(Fraction(3, 10),),
        memory=(Fraction(11 * GIB, 10),),
        gpus=(1,),
        hours=Fraction(24),
        hours_spelling="24",
        cpu_spellings=("300m",),
        memory_spellings=("1.1Gi",),
        gpu_spellings=("1",),
        pod_level=False,
        min_replicas=1,
        max_replicas=3,
        target=70,
        hpa_min=1,
        hpa_max=3,
        hpa_target=70,
        limits={
            "maxCPUCores": Fraction(9, 10),
            "maxMemoryGB": Fraction(33, 10),
            "dailyGPUHours": Fraction(72),
        },
    )
    assert _decide(opa, base).allowed
    split = replace(
        base,
        cpu=(Fraction(1, 10), Fraction(2, 10)),
        memory=(Fraction(11 * GIB, 10), Fraction(0)),
        gpus=(1, 0),
        cpu_spellings=("0.1", "0.2"),
        memory_spellings=("1.1Gi", "0"),
        gpu_spellings=("1", "0"),
    )
    assert _decide(opa, split).allowed
    above = replace(base, cpu_spellings=("300000001n",), cpu=(Fraction(300000001, 10**9),))
    assert {f.rule for f in _decide(opa, above).violations} == {"finops.cpu"}
