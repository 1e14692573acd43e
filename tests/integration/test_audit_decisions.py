"""What judging stored objects as no-op UPDATEs means to the real Rego through a real OPA: the
same findings as a CREATE, and nothing for an object already being deleted."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgepolicy.auditing import audit_objects
from edgepolicy.checking import CheckSession, PolicySource
from edgepolicy.library import library_path
from edgepolicy.manifests import Manifest

pytestmark = pytest.mark.integration

POLICY: dict[str, Any] = {
    "apiVersion": "policy.apexlogic.com/v1alpha1",
    "kind": "FinOpsPolicy",
    "metadata": {"name": "budget", "namespace": "ai"},
    "spec": {
        "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
        "costLimits": {"maxCPUCores": 2},
    },
}


def _pod(name: str, cpu: str) -> dict[str, Any]:
    resources = {"limits": {"cpu": cpu, "memory": "1Gi"}, "requests": {"cpu": cpu, "memory": "1Gi"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ai", "labels": {"app": "llm"}},
        "spec": {"containers": [{"name": "server", "image": "llm:1", "resources": resources}]},
    }


@pytest.fixture(scope="module")
def session(opa_binary: Path) -> Iterator[CheckSession]:
    with CheckSession(opa_binary=opa_binary, policy=PolicySource.from_path(library_path())) as s:
        yield s


def test_update_finds_what_create_finds(session: CheckSession) -> None:
    stored = [_pod("big", "4"), _pod("small", "1")]
    manifests = [Manifest(f"{i}.yaml", 0, 1, obj) for i, obj in enumerate([*stored, POLICY])]

    audited = audit_objects(stored, policies=[POLICY], decide=session.client.decide)
    checked = session.check(manifests)

    def findings(results: Any) -> dict[str, list[tuple[str, str, str]]]:
        return {
            r.name: [(f.rule, f.policy, f.message) for f in (*r.violations, *r.warnings)]
            for r in results
            if r.kind == "Pod"
        }

    assert findings(audited.results) == findings(checked.results)
    assert [f.rule for f in audited.results[0].violations] == ["finops.cpu"]
    assert audited.results[1].decision.allowed


def test_an_object_being_deleted_is_left_alone(session: CheckSession) -> None:
    deleting = copy.deepcopy(_pod("big", "4"))
    deleting["metadata"]["deletionTimestamp"] = "2026-12-06T11:00:00Z"
    deleting["metadata"]["finalizers"] = ["example.com/cleanup"]

    report = audit_objects([deleting], policies=[POLICY], decide=session.client.decide)

    assert report.results[0].decision.allowed
    assert not report.results[0].violations and not report.results[0].warnings
