"""`edgepolicy check` end to end: the real CLI, the shipped Rego library, a real OPA."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEED = "ai-workloads/edge-ai-inference-cost-policy"

QUANTIZATION = "model.quantization"

# What the shipped library decides for each example (file, kind, name) -> rule ids that deny.
EXPECTED_EXAMPLES: dict[tuple[str, str, str], set[str]] = {
    ("policies/edge-ai-inference-cost-policy.yaml", "FinOpsPolicy", SEED.split("/")[1]): set(),
    ("policies/model-training-cost-policy.yaml", "FinOpsPolicy", "model-training-cost-policy"):
        set(),
    ("workloads/allowed-training-job.yaml", "Job", "nightly-fine-tune"): set(),
    ("workloads/denied-cpu.yaml", "Deployment", "inference-cpu-heavy"):
        {"finops.cpu", QUANTIZATION},
    ("workloads/denied-gpu-hours.yaml", "DaemonSet", "camera-vision"):
        {"finops.gpu-hours", QUANTIZATION},
    ("workloads/denied-hpa.yaml", "Deployment", "inference-autoscaled"):
        {"finops.hpa", QUANTIZATION},
    ("workloads/denied-hpa.yaml", "HorizontalPodAutoscaler", "inference-autoscaled"):
        {"finops.hpa"},
    ("workloads/denied-idle-shutdown.yaml", "Pod", "inference-debug"):
        {"finops.idle-shutdown", QUANTIZATION},
    ("workloads/denied-memory.yaml", "StatefulSet", "embedding-cache"):
        {"finops.memory", QUANTIZATION},
    ("workloads/denied-quantization.yaml", "Deployment", "inference-server"): {QUANTIZATION},
    ("workloads/denied-replicas.yaml", "Deployment", "inference-gateway"):
        {"finops.replicas", QUANTIZATION},
}  # fmt: skip


def run_check(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process and capture what a user would see."""
    return subprocess.run(
        [sys.executable, "-m", "edgepolicy", "check", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def check_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    completed = run_check("--output", "json", *args)
    assert completed.returncode in (0, 1), completed.stderr
    return completed.returncode, json.loads(completed.stdout)


def denied_rules(result: dict[str, Any]) -> set[str]:
    return {violation["rule"] for violation in result["violations"]}


def test_examples_json_has_the_contract_shape_and_the_expected_verdicts() -> None:
    code, document = check_json("examples/")
    assert code == 1
    assert set(document) == {"results", "summary"}
    seen = {}
    for result in document["results"]:
        assert set(result) == {
            "file", "index", "apiVersion", "kind", "namespace", "name", "allowed",
            "violations", "warnings",
        }  # fmt: skip
        for finding in result["violations"] + result["warnings"]:
            assert set(finding) == {"rule", "message", "policy"}
        assert result["allowed"] == (not result["violations"])
        file = result["file"].removeprefix("examples/")
        seen[(file, result["kind"], result["name"])] = denied_rules(result)
    assert seen == EXPECTED_EXAMPLES
    denied = sum(1 for rules in EXPECTED_EXAMPLES.values() if rules)
    assert document["summary"] == {"objects": len(EXPECTED_EXAMPLES), "denied": denied, "warned": 0}


def test_examples_text_report_is_readable() -> None:
    completed = run_check("examples/")
    assert completed.returncode == 1
    out = completed.stdout
    assert (
        "PASS examples/workloads/allowed-training-job.yaml:5 Job ai-workloads/nightly-fine-tune"
        in out
    )
    assert (
        "DENY examples/workloads/denied-cpu.yaml:2 Deployment ai-workloads/inference-cpu-heavy"
        in out
    )
    assert "deny: finops.cpu: Deployment ai-workloads/inference-cpu-heavy" in out
    assert "11 object(s) checked: 8 denied, 0 warned, 3 allowed" in out
    assert completed.stderr == ""


def test_junit_report_is_valid_xml_with_one_failure_per_denied_object() -> None:
    completed = run_check("--output", "junit", "examples/")
    assert completed.returncode == 1
    root = ElementTree.fromstring(completed.stdout)
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert int(root.get("tests", "")) == len(cases) == 11
    failures = [case for case in cases if case.find("failure") is not None]
    assert int(root.get("failures", "")) == len(failures) == 8
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests", "")) == len(suite.findall("testcase"))
    cpu = next(case for case in cases if "inference-cpu-heavy" in case.get("name", ""))
    failure = cpu.find("failure")
    assert failure is not None
    assert failure.get("message") == "denied by finops.cpu, model.quantization"
    assert "finops.cpu [ai-workloads/edge-ai-inference-cost-policy]" in (failure.text or "")
    assert cpu.get("classname") == "examples/workloads/denied-cpu.yaml"
    assert (failure.text or "").startswith("at examples/workloads/denied-cpu.yaml:2\n")
    assert float(cpu.get("time", "")) >= 0


def test_sarif_report_names_rules_files_and_lines() -> None:
    completed = run_check("--output", "sarif", "examples/")
    assert completed.returncode == 1
    log = json.loads(completed.stdout)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert rules == sorted(set(rules))
    assert {"finops.cpu", "finops.hpa", "model.quantization"} <= set(rules)
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] == "error"
        assert result["message"]["text"]
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"].startswith("examples/")
        assert location["physicalLocation"]["region"]["startLine"] >= 1
    hpa = next(
        result
        for result in run["results"]
        if result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        == "HorizontalPodAutoscaler/ai-workloads/inference-autoscaled"
    )
    assert hpa["locations"][0]["physicalLocation"]["region"]["startLine"] == 26
    assert hpa["properties"]["policy"] == SEED


WORKLOAD_TEMPLATES = {
    "Pod": ("v1", "{pod}"),
    "Deployment": ("apps/v1", "{{replicas: 1, selector: {sel}, template: {template}}}"),
    "StatefulSet": (
        "apps/v1",
        "{{replicas: 1, serviceName: s, selector: {sel}, template: {template}}}",
    ),
    "ReplicaSet": ("apps/v1", "{{replicas: 1, selector: {sel}, template: {template}}}"),
    "DaemonSet": ("apps/v1", "{{selector: {sel}, template: {template}}}"),
    "Job": ("batch/v1", "{{parallelism: 1, template: {template}}}"),
    "CronJob": (
        "batch/v1",
        "{{schedule: '0 1 * * *', jobTemplate: {{spec: {{template: {template}}}}}}}",
    ),
}  # fmt: skip

TEAM_POLICY = """\
apiVersion: policy.apexlogic.com/v1alpha1
kind: FinOpsPolicy
metadata: {name: team-budget, namespace: team}
spec:
  targetWorkloadSelector: {matchLabels: {app: svc}}
  costLimits: {maxCPUCores: 2, maxMemoryGB: 4}
  autoScale: {minReplicas: 1, maxReplicas: 1}
"""


def workload(kind: str, name: str, cpu: str, labels: str = "{app: svc}") -> str:
    api_version, spec = WORKLOAD_TEMPLATES[kind]
    containers = f"[{{name: main, image: x, resources: {{limits: {{cpu: '{cpu}', memory: 1Gi}}}}}}]"
    if kind == "Pod":
        return (
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {labels}}}\n"
            f"spec: {{containers: {containers}}}\n"
        )
    template = f"{{metadata: {{labels: {labels}}}, spec: {{containers: {containers}}}}}"
    body = spec.format(sel="{matchLabels: {app: svc}}", template=template)
    return f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {body}\n"


@pytest.mark.parametrize("kind", sorted(WORKLOAD_TEMPLATES))
def test_every_workload_kind_is_checked_at_its_cpu_boundary(kind: str, tmp_path: Path) -> None:
    write(tmp_path / "policy.yaml", TEAM_POLICY)
    documents = [workload(kind, "at-limit", "2"), workload(kind, "over-limit", "2001m")]
    write(tmp_path / "workloads.yaml", "---\n".join(documents))
    code, document = check_json("--namespace", "team", tmp_path)
    assert code == 1
    by_name = {result["name"]: result for result in document["results"]}
    assert by_name["at-limit"]["allowed"] is True, by_name["at-limit"]
    assert by_name["at-limit"]["namespace"] == "team"
    assert denied_rules(by_name["over-limit"]) == {"finops.cpu"}
    assert by_name["over-limit"]["kind"] == kind


def test_objects_without_namespace_get_the_namespace_flag(tmp_path: Path) -> None:
    write(tmp_path / "policy.yaml", TEAM_POLICY)
    write(tmp_path / "pod.yaml", workload("Pod", "big", "3"))
    _, default = check_json(tmp_path)
    team_code, team = check_json("--namespace", "team", tmp_path)
    pod_default = next(r for r in default["results"] if r["kind"] == "Pod")
    pod_team = next(r for r in team["results"] if r["kind"] == "Pod")
    assert (pod_default["namespace"], pod_default["allowed"]) == ("default", True)
    assert (pod_team["namespace"], pod_team["allowed"], team_code) == ("team", False, 1)


def test_hpa_finds_its_target_in_another_file(tmp_path: Path) -> None:
    write(tmp_path / "policy.yaml", TEAM_POLICY)
    write(tmp_path / "a-deployment.yaml", workload("Deployment", "web", "1"))
    write(
        tmp_path / "b-hpa.yaml",
        """\
        apiVersion: autoscaling/v2
        kind: HorizontalPodAutoscaler
        metadata: {name: web}
        spec:
          scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
          minReplicas: 1
          maxReplicas: 4
        """,
    )
    _, document = check_json("--namespace", "team", tmp_path)
    by_kind = {result["kind"]: result for result in document["results"]}
    assert denied_rules(by_kind["HorizontalPodAutoscaler"]) == {"finops.hpa"}
    assert denied_rules(by_kind["Deployment"]) == {"finops.hpa"}


def test_unknown_kinds_are_allowed_and_reported(tmp_path: Path) -> None:
    write(
        tmp_path / "things.yaml",
        """\
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {ports: [{port: 80}]}
        ---
        apiVersion: example.com/v1
        kind: Gadget
        metadata: {name: g, namespace: lab}
        """,
    )
    completed = run_check(tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "PASS" in completed.stdout
    assert "Service default/web (kind Service has no edgepolicy rules; allowed)" in completed.stdout
    assert "Gadget lab/g (kind Gadget has no edgepolicy rules; allowed)" in completed.stdout


def test_malformed_policy_is_reported_as_policy_invalid(tmp_path: Path) -> None:
    write(
        tmp_path / "bad-policy.yaml",
        """\
        apiVersion: policy.apexlogic.com/v1alpha1
        kind: FinOpsPolicy
        metadata: {name: broken, namespace: team}
        spec:
          targetWorkloadSelector: {matchLabels: {app: svc}}
          costLimits: {maxCPUCores: -1}
          autoScale: {minReplicas: 5, maxReplicas: 2}
        """,
    )
    code, document = check_json(tmp_path)
    assert code == 1
    (result,) = document["results"]
    assert denied_rules(result) == {"policy.invalid"}
    messages = " ".join(v["message"] for v in result["violations"])
    assert "maxCPUCores" in messages
    assert "minReplicas" in messages
    assert all(v["policy"] == "team/broken" for v in result["violations"])


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   labels: {}\n", "bad.yaml",
         ":5: invalid YAML"),
        ("apiVersion: v1\nkind: Pod\n---\nkind: Pod\nmetadata: {name: y}\n", "nover.yaml",
         ":4: object has no apiVersion"),
        ('{"apiVersion": "v1",\n "kind": }', "bad.json", ":2: invalid JSON"),
        ("just a string\n", "scalar.yaml", ":1: expected a Kubernetes object"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nx: &r [*r]\n", "alias.yaml",
         ":1: field x[0][0]"),
        ("apiVersion: v1\nkind: Pod\nspec: " + "[" * 600 + "]" * 600, "deep.yaml",
         ":3: the document nests more than 100 levels"),
        ('{"apiVersion": "v1", "kind": "Pod",\n"spec": ' + "[" * 2000 + "]" * 2000 + "}",
         "deep.json", ":2: the document nests more than 100 levels"),
        ('apiVersion: v1\nkind: Pod\nmetadata:\n  name: "a\x07b"\n', "ctl.yaml",
         ":4: invalid YAML: unacceptable character #x0007"),
    ],
)  # fmt: skip
def test_unreadable_input_exits_2_naming_file_and_line(
    content: str, name: str, expected: str, tmp_path: Path
) -> None:
    path = write(tmp_path / name, content)
    completed = run_check("--strict", path)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.startswith(f"edgepolicy: error: {path}{expected}")
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-dir"], "no-such-dir: no such file or directory"),
        (["--policy", "no-such-policy", "examples"], "--policy no-such-policy: no such file"),
        (["--policy", "README.md", "examples"], "expected a directory of Rego files or a bundle"),
        (["--data", "no-such.yaml", "examples"], "--data no-such.yaml: no such data file"),
        (["--opa", "/nonexistent/opa", "examples"], "--opa /nonexistent/opa: OPA binary not found"),
        (["--output", "xml", "examples"], "invalid choice: 'xml'"),
        ([], "the following arguments are required: PATH"),
    ],
)
def test_bad_usage_exits_2_with_a_clear_message(args: list[str], expected: str) -> None:
    completed = run_check(*args)
    assert completed.returncode == 2
    assert expected in completed.stderr
    assert "Traceback" not in completed.stderr


def test_recursive_alias_in_a_data_file_exits_2_naming_it(tmp_path: Path) -> None:
    data = write(tmp_path / "data.yaml", "edgepolicy:\n  x: &r [*r]\n")
    completed = run_check("--data", data, "examples/policies")
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"edgepolicy: error: {data}:1: field edgepolicy.x[0]")
    assert "Traceback" not in completed.stderr


def test_empty_path_is_bad_usage() -> None:
    completed = run_check("")
    assert completed.returncode == 2
    assert completed.stderr.startswith("edgepolicy: error: empty path")


def test_hidden_directories_are_skipped_and_broken_links_named(tmp_path: Path) -> None:
    write(tmp_path / ".github" / "workflows" / "ci.yaml", "on: push\njobs: {}\n")
    write(tmp_path / "pod.yaml", workload("Pod", "p", "1"))
    code, document = check_json(tmp_path)
    assert (code, [r["name"] for r in document["results"]]) == (0, ["p"])
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    completed = run_check(tmp_path)
    assert completed.returncode == 2
    assert f"{tmp_path / 'gone.yaml'}: broken symbolic link" in completed.stderr


def test_nothing_to_check_is_bad_usage(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "not a manifest")
    write(tmp_path / "empty.yaml", "# nothing here yet\n")
    completed = run_check(tmp_path)
    assert completed.returncode == 2
    assert "no Kubernetes objects found in" in completed.stderr


def test_duplicate_policies_among_inputs_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", TEAM_POLICY)
    second = write(tmp_path / "b.yaml", TEAM_POLICY)
    completed = run_check(tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        f"edgepolicy: error: {second}:1: duplicate FinOpsPolicy team/team-budget "
        f"(also defined at {first}:1)"
    )


def test_a_file_given_twice_is_checked_once() -> None:
    seed = EXAMPLES / "policies" / "edge-ai-inference-cost-policy.yaml"
    code, document = check_json(EXAMPLES, seed, seed)
    assert code == 1
    assert len(document["results"]) == len(EXPECTED_EXAMPLES)


@pytest.mark.parametrize("api_version", ["policy.apexlogic.io/v1alpha1", "policy.apexlogic.com"])
def test_policy_with_a_mistyped_api_version_exits_2(api_version: str, tmp_path: Path) -> None:
    policy = write(tmp_path / "p.yaml", TEAM_POLICY.replace(
        "policy.apexlogic.com/v1alpha1", api_version))  # fmt: skip
    completed = run_check(policy)
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        f"edgepolicy: error: {policy}:1: FinOpsPolicy must have apiVersion "
        f"policy.apexlogic.com/v1alpha1, got '{api_version}'"
    )


def test_warn_mode_from_data_and_fail_on_warn(tmp_path: Path) -> None:
    settings = write(
        tmp_path / "settings.yaml",
        "edgepolicy:\n  settings:\n    enforcementActions:\n      model.quantization: warn\n",
    )
    target = EXAMPLES / "workloads" / "denied-quantization.yaml"
    policy = EXAMPLES / "policies"
    code, document = check_json("--data", settings, policy, target)
    result = document["results"][-1]
    assert (code, result["allowed"], result["violations"]) == (0, True, [])
    assert [w["rule"] for w in result["warnings"]] == ["model.quantization"]
    assert document["summary"]["warned"] == 1
    assert run_check("--data", settings, "--fail-on-warn", policy, target).returncode == 1


def test_conflicting_data_files_exit_2_naming_both(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", "edgepolicy: {settings: {gpuResourceNames: [a]}}\n")
    second = write(tmp_path / "b.json", '{"edgepolicy": {"settings": {"gpuResourceNames": []}}}')
    completed = run_check("--data", first, "--data", second, "examples/policies")
    assert completed.returncode == 2
    assert "conflicting values at data.edgepolicy.settings.gpuResourceNames" in completed.stderr
    assert str(first) in completed.stderr and str(second) in completed.stderr


def test_many_files_are_checked_by_one_opa(tmp_path: Path) -> None:
    log = tmp_path / "opa-invocations.log"
    wrapper = write(
        tmp_path / "opa-wrapper.sh",
        f'#!/bin/sh\necho "$@" >> {log}\nexec {find_opa()} "$@"\n',
    )
    wrapper.chmod(0o755)
    inputs = tmp_path / "inputs"
    write(inputs / "policy.yaml", TEAM_POLICY)
    for number in range(40):
        cpu = "1" if number % 2 else "3"
        write(inputs / f"pod-{number:02}.yaml", workload("Pod", f"pod-{number:02}", cpu))
    code, document = check_json("--opa", wrapper, "--namespace", "team", inputs)
    assert code == 1
    assert document["summary"] == {"objects": 41, "denied": 20, "warned": 0}
    invocations = log.read_text().splitlines()
    assert len(invocations) == 1
    assert invocations[0].startswith("run --server --addr 127.0.0.1:")


def test_list_kind_and_json_files_are_read(tmp_path: Path) -> None:
    items = [json.loads(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n},
             "spec": {"containers": []}})) for n in ("a", "b")]  # fmt: skip
    write(tmp_path / "list.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    _, document = check_json(tmp_path)
    assert [(r["name"], r["index"]) for r in document["results"]] == [("a", 0), ("b", 1)]


def _build_bundle(
    tmp_path: Path, policies: dict[str, Any], signing: tuple[Path, str, str] | None = None
) -> Path:
    """Build a real OPA bundle (``opa build``) holding the shipped library and ``policies``,
    signed by OPA itself when ``signing`` is (private key file, algorithm, key id)."""
    source = tmp_path / "bundle-src"
    source.mkdir()
    (source / ".manifest").write_text(json.dumps({"roots": ["edgepolicy"], "revision": "test"}))
    (source / "data.json").write_text(json.dumps({"edgepolicy": {"policies": policies}}))
    rego = source / "rego"
    for file in library_path().rglob("*.rego"):
        if not file.name.endswith("_test.rego"):
            target = rego / file.relative_to(library_path())
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    bundle = tmp_path / "bundle.tar.gz"
    command = [str(find_opa()), "build", "--bundle", str(source), "--output", str(bundle)]
    if signing is not None:
        key, algorithm, key_id = signing
        command += ["--signing-key", str(key), "--signing-alg", algorithm]
        claims = tmp_path / "claims.json"
        claims.write_text(json.dumps({"keyid": key_id}))
        command += ["--claims-file", str(claims)]
    subprocess.run(command, check=True, capture_output=True)
    return bundle


def test_bundle_policy_gives_the_same_verdicts_as_the_library(tmp_path: Path) -> None:
    from edgepolicy.manifests import load_paths
    from edgepolicy.policy_data import policies_to_data
    from edgepolicy.validated_policies import validate_policies

    policies = policies_to_data(
        validate_policies(m.obj for m in load_paths([EXAMPLES / "policies"]))
    )
    bundle = _build_bundle(tmp_path, policies)
    _, from_library = check_json("examples/")
    _, from_bundle = check_json("--policy", bundle, "examples/workloads")
    library_verdicts = {
        (r["kind"], r["name"]): denied_rules(r)
        for r in from_library["results"]
        if r["file"].startswith("examples/workloads")
    }
    bundle_verdicts = {(r["kind"], r["name"]): denied_rules(r) for r in from_bundle["results"]}
    expected = {
        (kind, name): rules
        for (file, kind, name), rules in EXPECTED_EXAMPLES.items()
        if file.startswith("workloads/")
    }
    assert bundle_verdicts == library_verdicts == expected


def test_bundle_with_data_under_its_roots_is_refused(tmp_path: Path) -> None:
    bundle = _build_bundle(tmp_path, {})
    settings = write(
        tmp_path / "settings.yaml",
        "edgepolicy:\n  settings:\n    enforcementActions: {finops.cpu: warn}\n",
    )
    completed = run_check("--policy", bundle, "--data", settings, "examples/workloads")
    assert completed.returncode == 2
    assert "the data sets data.edgepolicy, but bundle" in completed.stderr
    assert "owns data.edgepolicy" in completed.stderr


def _key_pair(tmp_path: Path, name: str, algorithm: str) -> tuple[Path, Path]:
    """Write a fresh private/public PEM pair for ``algorithm`` (RS256 or ES256)."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    private_file, public_file = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
    private_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_file, public_file


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_signed_bundle_is_verified_before_use(tmp_path: Path, algorithm: str) -> None:
    from edgepolicy.manifests import load_paths
    from edgepolicy.policy_data import policies_to_data
    from edgepolicy.validated_policies import validate_policies

    private, public = _key_pair(tmp_path, "signer", algorithm)
    _, other_public = _key_pair(tmp_path, "other", algorithm)
    policies = policies_to_data(
        validate_policies(m.obj for m in load_paths([EXAMPLES / "policies"]))
    )
    bundle = _build_bundle(tmp_path, policies, signing=(private, algorithm, "edge"))
    workloads = "examples/workloads"

    unverified = run_check("--policy", bundle, workloads)
    assert unverified.returncode == 2
    assert f"--policy {bundle}: the bundle is signed: give the public key that verifies it " in (
        unverified.stderr
    )
    assert "(--verification-key PEM, and --verification-key-id ID" in unverified.stderr

    wrong_id = run_check("--policy", bundle, "--verification-key", public, workloads)
    assert wrong_id.returncode == 2
    assert "is signed with key id 'edge', but the verification key's id is 'default'" in (
        wrong_id.stderr
    )

    verified = run_check(
        "--output", "json", "--policy", bundle,
        "--verification-key", public, "--verification-key-id", "edge", workloads,
    )  # fmt: skip
    assert verified.returncode == 1, verified.stderr
    assert json.loads(verified.stdout)["summary"]["denied"] == 8

    wrong_key = run_check(
        "--policy", bundle, "--verification-key", other_public,
        "--verification-key-id", "edge", workloads,
    )  # fmt: skip
    assert wrong_key.returncode == 2
    assert "OPA refused a bundle" in wrong_key.stderr


def test_tampered_signed_bundle_is_refused(tmp_path: Path) -> None:
    private, public = _key_pair(tmp_path, "signer", "RS256")
    bundle = _build_bundle(tmp_path, {}, signing=(private, "RS256", "edge"))
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(bundle) as source, tarfile.open(tampered, "w:gz") as target:
        for member in source.getmembers():
            content = source.extractfile(member)
            data = content.read() if content is not None else b""
            if member.name.lstrip("/") == "data.json":
                data = data.replace(b'"policies":{}', b'"policies":{"finops":{}}')
                assert b'"finops"' in data
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    completed = run_check(
        "--policy", tampered, "--verification-key", public,
        "--verification-key-id", "edge", "examples/",
    )  # fmt: skip
    assert completed.returncode == 2
    assert "OPA refused a bundle" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_verification_key_without_a_bundle_is_bad_usage(tmp_path: Path) -> None:
    _, public = _key_pair(tmp_path, "k", "ES256")
    completed = run_check("--verification-key", public, "examples/")
    assert completed.returncode == 2
    assert "--verification-key applies to a bundle" in completed.stderr
