"""Benchmark the Rego decision alone: `opa bench` of data.edgepolicy.admission.decision on a few
representative AdmissionReviews, with the seed FinOpsPolicy in data (as `serve --policies` and
bundles load it) or in the input's context (as the webhook sends the cluster's policies), both
as the policy validator hands them over (validated once, before the benchmark).

Not a test: it prints numbers (see docs/performance.md, "Rego decision").

    .venv/bin/python bench/rego_decision.py [--rego DIR [--unvalidated]] [--count N]
        [--cases a,b] [--json FILE]

`--rego` benchmarks another copy of the library (e.g. an older commit's `rego/`, extracted with
`git archive`), so before/after numbers come from the same script and inputs; `--unvalidated`
sends the policies as raw objects, as libraries that validated policies per decision read them.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.library import library_path
from edgepolicy.manifests import load_paths
from edgepolicy.opa_binary import find_opa
from edgepolicy.policy_data import policies_to_data, policy_key
from edgepolicy.validated_policies import validate_policies

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
class Inputs:
    """What one case decides: the review, the policies in its context and in data (as objects,
    validated by the benchmark as edgepolicy validates them when they enter), the related
    workloads and the model facts."""

    review: dict[str, Any]
    context: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    workloads: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, Any] | None = None

    def documents(self, *, unvalidated: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the OPA input and ``data.edgepolicy.policies``: the validator's output, or
        with ``unvalidated`` the raw objects, as libraries before validate-once read them."""
        if unvalidated:
            document = decision_input(self.review, workloads=self.workloads, models=self.models)
            document["context"] = {"policies": self.context, "workloads": self.workloads}
            if self.models is not None:
                document["context"]["models"] = self.models
            sections: dict[str, dict[str, Any]] = {"finops": {}, "model": {}}
            for obj in self.data:
                namespace, name = policy_key(obj)
                section = "model" if obj.get("kind") == "ModelPolicy" else "finops"
                sections[section].setdefault(namespace, {})[name] = obj
            return document, sections
        document = decision_input(
            self.review,
            policies=validate_policies(self.context),
            workloads=self.workloads,
            models=self.models,
        )
        return document, policies_to_data(validate_policies(self.data))


@dataclass(frozen=True)
class Case:
    """One benchmark input."""

    name: str
    description: str
    build: Callable[[], Inputs]


def _no_policy() -> Inputs:
    review = admission_review(_deployment("inference", namespace="default"))
    return Inputs(review, data=[_seed_policy(), MODEL_POLICY], models=QUANTIZED)


def _compliant() -> Inputs:
    review = admission_review(_deployment("inference"))
    return Inputs(review, data=[_seed_policy(), MODEL_POLICY], models=QUANTIZED)


def _compliant_context() -> Inputs:
    review = admission_review(_deployment("inference"))
    return Inputs(review, context=[_seed_policy()], models=QUANTIZED)


def _denied() -> Inputs:
    review = admission_review(_denied_deployment())
    return Inputs(
        review, data=[_seed_policy(), MODEL_POLICY], workloads=[_hpa("inference-over-budget")]
    )


def _ten_policies() -> Inputs:
    review = admission_review(_deployment("inference"))
    return Inputs(
        review, data=[_seed_policy(), MODEL_POLICY, *_other_policies(9)], models=QUANTIZED
    )


def _invalid_policy() -> Inputs:
    """The seed policy plus a malformed one selecting the Deployment: three wrong fields."""
    broken = _seed_policy()
    broken["metadata"]["name"] = "broken-cost-policy"
    broken["spec"]["costLimits"] = {"maxCPUCores": "8", "maxMemoryGB": 0}
    broken["spec"]["autoScale"] = {"minReplicas": 5, "maxReplicas": 3}
    review = admission_review(_deployment("inference"))
    return Inputs(review, data=[_seed_policy(), MODEL_POLICY, broken], models=QUANTIZED)


def _large() -> Inputs:
    review = admission_review(_large_deployment(30))
    return Inputs(review, data=[_seed_policy(), MODEL_POLICY], models=QUANTIZED)


CASES = [
    Case("no-policy", "Deployment, no policy in its namespace", _no_policy),
    Case("compliant", "matched compliant Deployment, seed policy in data", _compliant),
    Case("compliant-context", "the same, seed policy in input.context", _compliant_context),
    Case("denied", "Deployment with 11 violations of 10 rules (HPA in context)", _denied),
    Case(
        "ten-policies", "matched compliant Deployment, 10 policies in the namespace", _ten_policies
    ),
    Case("invalid-policy", "the same with a malformed policy (3 errors) in data", _invalid_policy),
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


def _bench(
    opa: Path, rego: Path, case: Case, count: int, work: Path, *, unvalidated: bool
) -> Result:
    """Run `opa bench` ``count`` times on ``case`` and keep the fastest run."""
    document, policies = case.build().documents(unvalidated=unvalidated)
    input_file = work / f"{case.name}.input.json"
    data_file = work / f"{case.name}.data.json"
    input_file.write_text(json.dumps(document), encoding="utf-8")
    data_file.write_text(json.dumps({"edgepolicy": {"policies": policies}}), encoding="utf-8")
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
    parser.add_argument(
        "--unvalidated",
        action="store_true",
        help="send the policies as raw objects, as libraries before validate-once read them "
        "(use with --rego of such a library)",
    )
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
            result = _bench(
                opa, args.rego, case, args.count, Path(tmp), unvalidated=args.unvalidated
            )
            results.append(result)
            print(
                f"{result.case:<18} {result.us_per_decision:>12.1f} {result.eval_median_us:>12.1f}"
                f" {result.allocs_per_decision:>8} {result.kb_per_decision:>8.1f}"
                f" {result.violations:>9}   {result.description}",
                flush=True,
            )
    if not args.unvalidated:
        policies = _invalid_policy().data
        seed, broken = policies[0], policies[-1]
        for label, policy in (("valid seed policy", seed), ("malformed policy", broken)):
            print(
                f"validation when a policy enters (Python, once): {_validation_us(policy):.0f} µs "
                f"per {label}"
            )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    return 0


def _validation_us(policy: dict[str, Any], rounds: int = 200) -> float:
    """The best of 5 timings of validating ``policy`` ``rounds`` times, per policy, in µs."""
    validate_policies([policy])  # schemas loaded and CEL rules compiled once, as at start
    timings = timeit.repeat(lambda: validate_policies([policy]), number=rounds, repeat=5)
    return min(timings) / rounds * 1e6


if __name__ == "__main__":
    sys.exit(main())
