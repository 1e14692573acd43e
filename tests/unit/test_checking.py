"""The check engine: what it sends to OPA, and how it counts (OPA replaced by a recorder)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from edgepolicy import checking
from edgepolicy.checking import (
    CheckReport,
    CheckResult,
    PolicySource,
    WorkloadIndex,
    check_manifests,
)
from edgepolicy.decision import Decision, Finding
from edgepolicy.errors import InputError, OpaError, UsageError
from edgepolicy.manifests import Manifest, load_text
from edgepolicy.verification_keys import VerificationKey

MANIFESTS = """\
apiVersion: policy.apexlogic.com/v1alpha1
kind: FinOpsPolicy
metadata: {name: budget}
spec: {targetWorkloadSelector: {matchLabels: {app: a}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: elsewhere}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-hpa}
spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
"""

DENY = Finding("finops.cpu", "team/budget", "too much", "deny")
WARN = Finding("finops.memory", "team/budget", "a lot", "warn")


class RecordingOpa:
    """Stands in for OpaProcess + OpaClient: records what it is started with and asked."""

    instances: list[RecordingOpa] = []

    def __init__(self, binary: Path, **options: Any) -> None:
        self.binary = binary
        self.options = options
        self.inputs: list[Mapping[str, Any]] = []
        self.url = "http://recording"
        RecordingOpa.instances.append(self)

    def __enter__(self) -> RecordingOpa:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class RecordingClient:
    def __init__(self, url: str, **options: Any) -> None:
        self.opa = RecordingOpa.instances[-1]

    def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        self.opa.inputs.append(input_doc)
        if input_doc["request"]["name"] == "web":
            return Decision(allowed=False, violations=(DENY,))
        return Decision(allowed=True)

    def query(self, path: str, input_doc: Mapping[str, Any] | None = None) -> Any:
        raise OpaError(f"OPA has no value at data.{path}")  # no ModelPolicies in data

    def close(self) -> None:
        return None


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[RecordingOpa]:
    RecordingOpa.instances = []
    monkeypatch.setattr(checking, "OpaProcess", RecordingOpa)
    monkeypatch.setattr(checking, "OpaClient", RecordingClient)
    return RecordingOpa.instances


def test_one_opa_decides_every_object_with_the_run_as_context(
    recorded: list[RecordingOpa],
) -> None:
    manifests = load_text(MANIFESTS, "all.yaml")
    report = check_manifests(
        manifests,
        opa_binary=Path("/opa"),
        policy=PolicySource(Path("/rego"), is_bundle=False),
        data={"x": 1},
        namespace="team",
    )
    (opa,) = recorded
    assert opa.options == {
        "paths": [Path("/rego")],
        "bundles": [],
        "data": {"x": 1},
        "verification_key": None,
    }
    by_name = {doc["request"]["name"]: doc for doc in opa.inputs}
    assert set(by_name) == {"budget", "web", "other", "web-hpa", "team"}
    for doc in opa.inputs:
        (policy,) = doc["context"]["policies"]
        assert policy["metadata"] == {"name": "budget", "namespace": "team"}
        assert doc["request"]["operation"] == "CREATE"
    assert by_name["web"]["request"]["namespace"] == "team"
    assert by_name["other"]["request"]["namespace"] == "elsewhere"
    assert by_name["team"]["request"]["namespace"] == ""
    assert [w["metadata"]["name"] for w in by_name["web-hpa"]["context"]["workloads"]] == ["web"]
    assert [w["metadata"]["name"] for w in by_name["web"]["context"]["workloads"]] == ["web-hpa"]
    assert by_name["other"]["context"]["workloads"] == []
    assert [result.name for result in report.results] == [
        "budget",
        "web",
        "other",
        "web-hpa",
        "team",
    ]
    assert [result.namespace for result in report.results][:3] == ["team", "team", "elsewhere"]
    assert report.denied == 1
    assert report.exit_code() == 1


def test_bundle_policy_is_loaded_as_a_bundle(recorded: list[RecordingOpa]) -> None:
    check_manifests(
        [],
        opa_binary=Path("/opa"),
        policy=PolicySource(Path("/b.tar.gz"), is_bundle=True),
    )
    assert recorded[0].options["paths"] == []
    assert recorded[0].options["bundles"] == [Path("/b.tar.gz")]


def test_duplicate_policies_fail_before_opa_starts(recorded: list[RecordingOpa]) -> None:
    policy = MANIFESTS.split("---")[0]
    with pytest.raises(InputError, match="duplicate FinOpsPolicy default/budget") as caught:
        check_manifests(
            load_text(policy, "a.yaml") + load_text("# b\n" + policy, "b.yaml"),
            opa_binary=Path("/opa"),
            policy=PolicySource(Path("/rego"), is_bundle=False),
        )
    assert (caught.value.path, caught.value.line) == ("b.yaml", 2)
    assert "also defined at a.yaml:1" in str(caught.value)
    assert recorded == []


def test_nameless_policy_names_its_file_and_line(recorded: list[RecordingOpa]) -> None:
    nameless = "apiVersion: policy.apexlogic.com/v1alpha1\nkind: FinOpsPolicy\nmetadata: {}\n"
    with pytest.raises(InputError, match="FinOpsPolicy has no metadata.name") as caught:
        check_manifests(
            load_text("apiVersion: v1\nkind: Pod\n---\n" + nameless, "p.yaml"),
            opa_binary=Path("/opa"),
            policy=PolicySource(Path("/rego"), is_bundle=False),
        )
    assert (caught.value.path, caught.value.line) == ("p.yaml", 4)
    assert recorded == []


def _result(name: str, decision: Decision) -> CheckResult:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}
    return CheckResult(Manifest("f.yaml", 0, 1, obj), "default", decision)


@pytest.mark.parametrize(
    ("decisions", "fail_on_warn", "expected"),
    [
        ([], False, 0),
        ([Decision(allowed=True)], False, 0),
        ([Decision(allowed=True, warnings=(WARN,))], False, 0),
        ([Decision(allowed=True, warnings=(WARN,))], True, 1),
        ([Decision(allowed=True), Decision(allowed=False, violations=(DENY,))], False, 1),
    ],
)
def test_exit_code(decisions: list[Decision], fail_on_warn: bool, expected: int) -> None:
    results = tuple(_result(f"p{i}", d) for i, d in enumerate(decisions))
    report = CheckReport(results, fail_on_warn=fail_on_warn)
    assert report.exit_code() == expected
    assert any(report.fails(result) for result in results) is bool(expected)


def test_result_properties() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"generateName": "g-"}}
    result = CheckResult(Manifest("x.yaml", 3, 7, obj), "lab", Decision(allowed=True))
    assert (result.file, result.index, result.line) == ("x.yaml", 3, 7)
    assert (result.api_version, result.kind, result.name) == ("example.com/v1", "Gadget", "g-")
    assert not result.is_checked_kind
    assert not result.is_policy
    assert not result.denied


def test_workload_index_relates_hpas_and_targets_by_namespace_kind_and_name() -> None:
    hpa = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "a"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}},
    }
    web = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "a"}}
    web_b = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "b"}}
    set_a = {"kind": "StatefulSet", "metadata": {"name": "web", "namespace": "a"}}
    broken = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"}, "spec": []}
    index = WorkloadIndex([hpa, web, web_b, set_a, broken])
    assert index.related(hpa) == [web]
    assert index.related(web) == [hpa]
    assert index.related(web_b) == []
    assert index.related(set_a) == []
    assert index.related(broken) == []
    self_scaling = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "HorizontalPodAutoscaler", "name": "h"}},
    }
    assert WorkloadIndex([self_scaling]).related(self_scaling) == []


def test_policy_source_classifies_paths(tmp_path: Path) -> None:
    bundle = tmp_path / "policy.tar.gz"
    bundle.write_bytes(b"")
    other = tmp_path / "policy.zip"
    other.write_bytes(b"")
    assert PolicySource.from_path(tmp_path) == PolicySource(tmp_path, is_bundle=False)
    assert PolicySource.from_path(bundle) == PolicySource(bundle, is_bundle=True)
    with pytest.raises(UsageError, match="expected a directory of Rego files or a bundle"):
        PolicySource.from_path(other)
    with pytest.raises(UsageError, match="no such file or directory"):
        PolicySource.from_path(tmp_path / "missing")


def test_verification_key_needs_a_bundle(recorded: list[RecordingOpa]) -> None:
    key = VerificationKey("k", "RS256", "-----BEGIN PUBLIC KEY-----")
    with pytest.raises(UsageError, match="a verification key applies to a signed bundle"):
        check_manifests(
            [],
            opa_binary=Path("/opa"),
            policy=PolicySource(Path("/rego"), is_bundle=False),
            verification_key=key,
        )
    check_manifests(
        [],
        opa_binary=Path("/opa"),
        policy=PolicySource(Path("/b.tar.gz"), is_bundle=True),
        verification_key=key,
    )
    assert recorded[0].options["verification_key"] is key
