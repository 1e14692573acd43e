"""Benchmark the Rego decision alone: `opa bench` of data.edgepolicy.admission.decision on a few
representative AdmissionReviews, with the seed FinOpsPolicy in data (as `serve --policies` and
bundles load it) or in the input's context (as the webhook sends the cluster's policies).

Not a test: it prints numbers (see docs/performance.md, "Rego decision").

    .venv/bin/python bench/rego_decision.py [--rego DIR] [--count N] [--cases a,b] [--json FILE]

`--rego` benchmarks another copy of the library (e.g. an older commit's `rego/`, extracted with
`git archive`), so before/after numbers come from the same script and inputs.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgepolicy.library import library_path
from edgepolicy.manifests import load_paths
from edgepolicy.opa_binary import find_opa
from edgepolicy.policy_data import policies_to_data
from edgepolicy.review import admission_review, decision_input

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
QUERY = "data.edgepolicy.admission.decision"
NAMESPACE = "ai-workloads"


def _seed_policy() -> dict[str, Any]:
    """A fresh copy of the seed FinOpsPolicy of examples/, read as `edgepolicy check` reads it."""
    return load_paths([EXAMPLES / "policies" / "edge-ai-inference-cost-policy.yaml"])[0].obj


def _other_policies(count: int) -> list[dict[str, Any]]:
    """``count`` complete FinOpsPolicies in the namespace whose selectors miss the Deployment
    (half matchLabels, half matchExpressions), like other teams' budgets."""
    policies = []
    for i in range(count):
        policy = copy.deepcopy(_seed_policy())
        policy["metadata"]["name"] = f"team-{i}-cost-policy"
        if i % 2:
            policy["spec"]["targetWorkloadSelector"] = {
                "matchLabels": {"app": f"team-{i}-service"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["production-edge", "staging-edge"]},
                    {"key": "tier", "operator": "NotIn", "values": ["batch"]},
                ],
            }
        else:
            policy["spec"]["targetWorkloadSelector"] = {
                "matchLabels": {"app": f"team-{i}-service", "env": "production-edge"}
            }
        policies.append(policy)
    return policies


def _deployment(name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The seed's compliant Deployment: 1 replica (3 counted) x 2 cores, 8Gi."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "ai-inference-service"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "ai-inference-service", "env": "production-edge"}},
            "template": {
                "metadata": {"labels": {"app": "ai-inference-service", "env": "production-edge"}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.example/inference:1.0",
                            "ports": [{"containerPort": 8080}],
                            "resources": {
                                "requests": {"cpu": "1", "memory": "4Gi"},
                                "limits": {"cpu": "2", "memory": "8Gi"},
                            },
                        }
                    ]
                },
            },
        },
    }


def _denied_deployment() -> dict[str, Any]:
    """A Deployment breaking most rules: replicas, cpu, memory, GPU-hours, a sidecar without
    limits, a long idle-shutdown annotation, no quantized model (plus a wide HPA in context)."""
    obj = _deployment("inference-over-budget")
    obj["spec"]["replicas"] = 4
    obj["metadata"]["annotations"] = {"finops.apexlogic.com/idle-shutdown-after": "2h"}
    pod = obj["spec"]["template"]["spec"]
    pod["containers"][0]["resources"]["limits"] = {
        "cpu": "4",
        "memory": "16Gi",
        "nvidia.com/gpu": 1,
    }
    pod["containers"].append({"name": "metrics", "image": "registry.example/exporter:0.3"})
    pod["initContainers"] = [
        {
            "name": "fetch-model",
            "image": "registry.example/fetch:1.0",
            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
        }
    ]
    return obj


def _hpa(target: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }


def _large_deployment(containers: int) -> dict[str, Any]:
    """The admission benchmark's large object: a Deployment with ``containers`` containers."""
    obj = _deployment("inference-sidecars")
    env = [{"name": f"SETTING_{i}", "value": "x" * 64} for i in range(20)]
    template = obj["spec"]["template"]["spec"]["containers"][0]
    template["env"] = env
    template["resources"]["limits"] = {"cpu": "50m", "memory": "128Mi"}
    obj["spec"]["template"]["spec"]["containers"] = [
        {**copy.deepcopy(template), "name": f"worker-{i}"} for i in range(containers)
    ]
    return obj


MODEL_POLICY: dict[str, Any] = {
    "apiVersion": "policy.apexlogic.com/v1alpha1",
    "kind": "ModelPolicy",
    "metadata": {"name": "trusted-models", "namespace": NAMESPACE},
    "spec": {
        "targetWorkloadSelector": {"matchLabels": {"app": "ai-inference-service"}},
        "signature": {"required": True, "publicKeys": ["-----BEGIN PUBLIC KEY-----\n…"]},
        "biasThresholds": {"demographicParityDifference": 0.1},
    },
}
# What the verifier gives Rego for a model whose signature verified against MODEL_POLICY.
QUANTIZED = {
    f"{NAMESPACE}/trusted-models": {
        "default": {
            "verified": True,
            "signer": "SHA256:bench",
            "facts": json.dumps(
                {
                    "model": {"path": "model.onnx", "quantization": "int8"},
                    "evaluations": [
                        {"sensitive": "group", "metrics": {"demographicParityDifference": 0.04}}
                    ],
                }
            ),
        }
    }
}


@dataclass(frozen=True)
class Case:
    """One benchmark input: the AdmissionReview (with context) and the policies in data."""

    name: str
    description: str
    build: Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]]


def _no_policy() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    review = admission_review(_deployment("inference", namespace="default"))
    return decision_input(review, models=QUANTIZED), [_seed_policy(), MODEL_POLICY]


def _compliant() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return decision_input(admission_review(_deployment("inference")), models=QUANTIZED), [
        _seed_policy(),
        MODEL_POLICY,
    ]


def _compliant_context() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    review = admission_review(_deployment("inference"))
    policies = [_seed_policy(), MODEL_POLICY]
    return decision_input(review, policies=policies, models=QUANTIZED), []


def _denied() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    review = admission_review(_denied_deployment())
    workloads = [_hpa("inference-over-budget")]
    return decision_input(review, workloads=workloads), [_seed_policy(), MODEL_POLICY]


def _ten_policies() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    review = admission_review(_deployment("inference"))
    policies = [_seed_policy(), MODEL_POLICY, *_other_policies(9)]
    return decision_input(review, models=QUANTIZED), policies


def _large() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    review = admission_review(_large_deployment(30))
    return decision_input(review, models=QUANTIZED), [_seed_policy(), MODEL_POLICY]


CASES = [
    Case("no-policy", "Deployment, no policy in its namespace", _no_policy),
    Case("compliant", "matched compliant Deployment, seed policy in data", _compliant),
    Case("compliant-context", "the same, seed policy in input.context", _compliant_context),
    Case("denied", "Deployment with 11 violations of 10 rules (HPA in context)", _denied),
    Case(
        "ten-policies", "matched compliant Deployment, 10 policies in the namespace", _ten_policies
    ),
    Case("large", "matched compliant Deployment with 30 containers", _large),
]


@dataclass(frozen=True)
class Result:
    """What `opa bench` measured for one case."""

    case: str
    description: str
    iterations: int
    us_per_decision: float
    eval_median_us: float
    allocs_per_decision: int
    kb_per_decision: float
    violations: int


def _bench(opa: Path, rego: Path, case: Case, count: int, work: Path) -> Result:
    """Run `opa bench` ``count`` times on ``case`` and keep the fastest run."""
    document, policies = case.build()
    input_file = work / f"{case.name}.input.json"
    data_file = work / f"{case.name}.data.json"
    input_file.write_text(json.dumps(document), encoding="utf-8")
    data_file.write_text(
        json.dumps({"edgepolicy": {"policies": policies_to_data(policies)}}), encoding="utf-8"
    )
    common = ["-d", str(rego), "-d", str(data_file), "-i", str(input_file), QUERY]
    decision = json.loads(
        subprocess.run(
            [str(opa), "eval", "--format", "json", *common],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["result"][0]["expressions"][0]["value"]
    best: dict[str, Any] | None = None
    for _ in range(count):
        run = subprocess.run(
            [str(opa), "bench", "--format", "json", *common],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(run.stdout)
        if best is None or measured["T"] / measured["N"] < best["T"] / best["N"]:
            best = measured
    assert best is not None
    n = best["N"]
    return Result(
        case=case.name,
        description=case.description,
        iterations=n,
        us_per_decision=best["T"] / n / 1000,
        eval_median_us=best["Extra"].get("histogram_timer_rego_query_eval_ns_median", 0) / 1000,
        allocs_per_decision=round(best["MemAllocs"] / n),
        kb_per_decision=best["MemBytes"] / n / 1024,
        violations=len(decision["violations"]) + len(decision["warnings"]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rego", type=Path, default=library_path(), help="the Rego library")
    parser.add_argument("--count", type=int, default=3, help="runs per case; the fastest counts")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    wanted = args.cases.split(",")
    unknown = set(wanted) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}")
    opa = find_opa()
    results = []
    print(f"opa bench {QUERY} (library {args.rego}, best of {args.count})")
    header = ["µs/decision", "eval p50 µs", "allocs", "KiB", "findings"]
    widths = [12, 12, 8, 8, 9]
    print(f"{'case':<18} " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    with tempfile.TemporaryDirectory(prefix="rego-bench-") as tmp:
        for case in (c for c in CASES if c.name in wanted):
            result = _bench(opa, args.rego, case, args.count, Path(tmp))
            results.append(result)
            print(
                f"{result.case:<18} {result.us_per_decision:>12.1f} {result.eval_median_us:>12.1f}"
                f" {result.allocs_per_decision:>8} {result.kb_per_decision:>8.1f}"
                f" {result.violations:>9}   {result.description}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
