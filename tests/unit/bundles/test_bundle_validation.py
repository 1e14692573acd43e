"""Build-time validation against the real shipped library: names, and repository Rego probed.

Repository Rego can add findings in any package under ``data.edgepolicy.rules``; the build
evaluates it on probe inputs (the policies and a minimal Deployment per policy) so a rule whose
findings break the decision document fails the build instead of failing closed at admission.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from edgepolicy.bundles.builder import build_bundle
from policyrepo import PolicyRepo, finops_policy

from edgepolicy.errors import OpaError

_DEPLOYMENT_RULE = """package edgepolicy.rules.custom

findings contains finding if {{
	input.request.kind.kind == "Deployment"
	input.request.object.metadata.labels.app == "ai-inference-service"
	finding := {finding}
}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> PolicyRepo:
    repo = PolicyRepo(tmp_path / "policies")
    repo.write("cost.yaml", finops_policy())
    repo.commit("policy")
    return repo


def _with_rule(repo: PolicyRepo, finding: str) -> None:
    repo.write("rego/custom.rego", _DEPLOYMENT_RULE.format(finding=finding))
    repo.commit("custom rule")


def test_a_well_formed_repository_rule_builds(repo: PolicyRepo, opa: Path) -> None:
    _with_rule(repo, '{"rule": "custom.owner", "policy": "ai-workloads/x", "message": "add owner"}')
    assert build_bundle(repo.path, opa=opa).policies == 1


@pytest.mark.parametrize(
    ("finding", "field"),
    [
        ('{"rule": "custom.owner", "policy": "ai-workloads/x", "message": 7}', "message"),
        ('{"rule": 5, "policy": "ai-workloads/x", "message": "add owner"}', "rule"),
        ('{"rule": "custom.owner", "policy": ["x"], "message": "m"}', "policy"),
        ('{"rule": "custom.owner", "policy": "a/x", "message": "m", "container": 1}', "container"),
        ('"not an object"', "expected an object"),
    ],
)
def test_findings_of_the_wrong_shape_fail_the_build(
    repo: PolicyRepo, opa: Path, finding: str, field: str
) -> None:
    _with_rule(repo, finding)
    with pytest.raises(OpaError) as error:
        build_bundle(repo.path, opa=opa)
    message = str(error.value)
    assert "data.edgepolicy.rules.custom.findings" in message and field in message
    assert "Deployment ai-workloads/" in message  # the probe input that showed it


def test_findings_that_are_no_set_fail_the_build(repo: PolicyRepo, opa: Path) -> None:
    repo.write("rego/custom.rego", "package edgepolicy.rules.custom\n\nfindings := 5\n")
    repo.commit("findings is a number")
    with pytest.raises(
        OpaError, match=r"data\.edgepolicy\.rules\.custom\.findings: expected a set"
    ):
        build_bundle(repo.path, opa=opa)


def test_a_rule_that_errors_in_opa_on_a_deployment_fails_the_build(
    repo: PolicyRepo, opa: Path
) -> None:
    repo.write(
        "rego/custom.rego",
        "package edgepolicy.rules.custom\n\n"
        'owner := "a" if input.request.kind.kind == "Deployment"\n\n'
        'owner := "b" if input.request.kind.kind == "Deployment"\n',
    )
    repo.commit("conflict")
    with pytest.raises(OpaError, match="evaluating a probe Deployment ai-workloads/.*HTTP 500"):
        build_bundle(repo.path, opa=opa)


def test_repository_rego_is_probed_without_any_policy(tmp_path: Path, opa: Path) -> None:
    repo = PolicyRepo(tmp_path / "rules-only")
    repo.write(
        "rego/custom.rego",
        "package edgepolicy.rules.custom\n\n"
        'findings contains {"rule": "custom.x", "policy": "", "message": 1} if {\n'
        '\tinput.request.kind.kind == "Deployment"\n}\n',
    )
    repo.commit("rules only")
    with pytest.raises(OpaError, match="Deployment default/"):
        build_bundle(repo.path, opa=opa)
