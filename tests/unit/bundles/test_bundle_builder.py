"""Building bundles from a policy repository (real OPA validates; stand-in library)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from edgepolicy.bundles.builder import build_bundle
from edgepolicy.bundles.signing import load_signing_key
from policyrepo import PolicyRepo, finops_policy

from edgepolicy.errors import InputError, OpaError

pytestmark = pytest.mark.usefixtures("stand_in_library")


def _files(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


@pytest.fixture
def repo(tmp_path: Path) -> PolicyRepo:
    repo = PolicyRepo(tmp_path / "policies")
    repo.write("teams/ai/cost.yaml", finops_policy())
    repo.write(
        "teams/ml/more.yaml",
        [
            finops_policy("batch", "ml"),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}},
        ],
    )
    repo.write(".github/workflows/ci.yml", {"on": "push", "jobs": {}})
    repo.write("rego/extra.rego", "package edgepolicy.custom\n\nextra := true\n")
    repo.write("rego/extra_test.rego", "package edgepolicy.custom_test\n")
    repo.commit("policies")
    return repo


def test_bundle_layout_manifest_and_data(repo: PolicyRepo, opa: Path) -> None:
    bundle = build_bundle(repo.path, opa=opa, source="https://user:pw@git.example.com/p.git")
    files = _files(bundle.archive)
    assert set(files) == {
        ".manifest",
        "edgepolicy/admission/decision.rego",
        "edgepolicy/policies/data.json",
        "edgepolicy/rules/stand_in.rego",
        "repo/rego/extra.rego",
    }
    manifest = json.loads(files[".manifest"])
    head = repo.git("rev-parse", "HEAD")
    assert manifest == {
        "revision": head,
        "roots": ["edgepolicy"],
        "metadata": {
            "commit": head,
            "author_time": "2026-01-01T00:01:00Z",
            "commit_time": "2026-01-01T00:01:00Z",
            "source": "https://git.example.com/p.git",
        },
    }
    data = json.loads(files["edgepolicy/policies/data.json"])
    assert set(data["finops"]) == {"ai-workloads", "ml"}
    assert data["finops"]["ml"]["batch"]["spec"]["autoScale"]["maxReplicas"] == 3
    assert data["model"] == {}
    assert data["validated"] is True  # the validator's output, which the decision trusts
    assert data["invalid"] == {}
    assert bundle.revision == head and bundle.policies == 2 and not bundle.signed


def test_same_commit_and_key_give_identical_bytes(
    repo: PolicyRepo, opa: Path, rsa_key_file: Path, ec_key_file: Path
) -> None:
    for key_file in (rsa_key_file, ec_key_file):
        key = load_signing_key(key_file, "k")
        first = build_bundle(repo.path, opa=opa, signing_key=key).archive
        second = build_bundle(repo.path, opa=opa, signing_key=key).archive
        assert first == second
        assert ".signatures.json" in _files(first)


def test_a_new_commit_gives_a_new_revision(repo: PolicyRepo, opa: Path) -> None:
    before = build_bundle(repo.path, opa=opa)
    repo.write("teams/ai/cost.yaml", finops_policy(max_replicas=5))
    repo.commit("raise replicas")
    after = build_bundle(repo.path, opa=opa)
    assert before.revision != after.revision
    assert build_bundle(repo.path, "HEAD~1", opa=opa).archive == before.archive


def test_invalid_policy_fails_naming_file_object_and_field(repo: PolicyRepo, opa: Path) -> None:
    repo.write("teams/ai/cost.yaml", finops_policy(max_cpu_cores=-2))
    repo.commit("bad")
    with pytest.raises(InputError) as error:
        build_bundle(repo.path, opa=opa)
    message = str(error.value)
    assert message.startswith("teams/ai/cost.yaml:1: ")
    assert "FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy" in message
    assert message.endswith(
        "FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy is invalid: "
        "spec.costLimits.maxCPUCores must be a number greater than 0, got -2"
    )


def test_invalid_yaml_fails_with_file_and_line(repo: PolicyRepo, opa: Path) -> None:
    repo.write("teams/broken.yaml", "a: 1\nb: [unclosed\n")
    repo.commit("broken")
    with pytest.raises(InputError, match=r"^teams/broken.yaml:\d+: invalid YAML"):
        build_bundle(repo.path, opa=opa)


def test_duplicate_policies_are_rejected(repo: PolicyRepo, opa: Path) -> None:
    repo.write("copy.yaml", finops_policy())
    repo.commit("duplicate")
    with pytest.raises(
        InputError,
        match="^teams/ai/cost.yaml:1: duplicate FinOpsPolicy ai-workloads/edge-ai-inference-cost-"
        "policy, first defined at copy.yaml:1",
    ):
        build_bundle(repo.path, opa=opa)


def test_policy_without_a_name_is_rejected_with_its_file(repo: PolicyRepo, opa: Path) -> None:
    nameless = finops_policy()
    del nameless["metadata"]["name"]
    repo.write("nameless.yaml", nameless)
    repo.commit("nameless")
    with pytest.raises(InputError, match="^nameless.yaml:1: FinOpsPolicy has no metadata.name"):
        build_bundle(repo.path, opa=opa)


def test_rego_outside_the_bundle_roots_is_rejected(repo: PolicyRepo, opa: Path) -> None:
    repo.write("rego/rogue.rego", "package rogue\n\nallow := true\n")
    repo.commit("rogue")
    with pytest.raises(OpaError, match="rogue"):
        build_bundle(repo.path, opa=opa)


def test_rego_that_does_not_compile_is_rejected(repo: PolicyRepo, opa: Path) -> None:
    repo.write("rego/broken.rego", "package edgepolicy.broken\n\nallow if {\n")
    repo.commit("broken rego")
    with pytest.raises(OpaError, match="broken.rego"):
        build_bundle(repo.path, opa=opa)


def test_settings_file_becomes_data_edgepolicy_settings(repo: PolicyRepo, opa: Path) -> None:
    repo.write("edgepolicy-settings.yaml", {"enforcementActions": {"finops.replicas": "warn"}})
    repo.commit("warn first")
    files = _files(build_bundle(repo.path, opa=opa).archive)
    assert json.loads(files["edgepolicy/settings/data.json"]) == {
        "enforcementActions": {"finops.replicas": "warn"}
    }


def test_bad_settings_fail_the_build(repo: PolicyRepo, opa: Path) -> None:
    repo.write("edgepolicy-settings.yaml", {"enforcementActions": {"finops.replicas": "off"}})
    repo.commit("typo")
    with pytest.raises(InputError, match="edgepolicy-settings.yaml: enforcementActions"):
        build_bundle(repo.path, opa=opa)


def _source(archive: bytes) -> str:
    return str(json.loads(_files(archive)[".manifest"])["metadata"]["source"])


def test_source_does_not_depend_on_the_local_path(
    repo: PolicyRepo, opa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = build_bundle(repo.path, opa=opa).archive
    monkeypatch.chdir(repo.path)
    relative = build_bundle(Path("."), opa=opa).archive
    clone = tmp_path / "elsewhere" / "clone"
    repo.git("clone", "--quiet", str(repo.path), str(clone))
    cloned = build_bundle(clone, opa=opa).archive
    assert absolute == relative == cloned
    assert _source(absolute) == "local"
    assert str(tmp_path) not in _files(absolute)[".manifest"].decode()


@pytest.mark.parametrize(
    ("origin", "source"),
    [
        ("https://ci:s3cret@git.example.com/platform/policies.git", "https://git.example.com/platform/policies.git"),
        ("git@git.example.com:platform/policies.git", "git.example.com:platform/policies.git"),
        ("file:///srv/git/policies.git", "local"),
    ],
)  # fmt: skip
def test_source_defaults_to_the_origin_remote(
    repo: PolicyRepo, opa: Path, origin: str, source: str
) -> None:
    repo.git("remote", "add", "origin", origin)
    assert _source(build_bundle(repo.path, opa=opa).archive) == source


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"name": "Bad_Name", "namespace": "ml"}, "metadata.name"),
        ({"name": "a" * 254, "namespace": "ml"}, "metadata.name"),
        ({"name": "-a", "namespace": "ml"}, "metadata.name"),
        ({"name": "ok", "namespace": "Bad_NS"}, "metadata.namespace"),
        ({"name": "ok", "namespace": "a.b"}, "metadata.namespace"),
        ({"name": "ok", "namespace": "n" * 64}, "metadata.namespace"),
    ],
)
def test_names_are_checked_as_kubernetes_does(
    repo: PolicyRepo, opa: Path, metadata: dict[str, object], field: str
) -> None:
    policy = finops_policy()
    policy["metadata"] = metadata
    repo.write("named.yaml", policy)
    repo.commit("names")
    with pytest.raises(InputError, match=rf"^named.yaml:1: FinOpsPolicy .*{field} must be a"):
        build_bundle(repo.path, opa=opa)


def test_dotted_names_and_long_valid_names_are_accepted(repo: PolicyRepo, opa: Path) -> None:
    repo.write("named.yaml", finops_policy("team.ai-cost." + "a" * 63, "n" * 63))
    repo.commit("valid names")
    assert build_bundle(repo.path, opa=opa).policies == 3
