"""The GitOps loop, driven round by round (real Git and OPA, stand-in library)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from edgepolicy.bundles.commit_trust import TrustPolicy
from edgepolicy.bundles.publish import Target
from edgepolicy.bundles.watch import WatchConfig, watch
from policyrepo import PolicyRepo, allowed_signer, finops_policy, ssh_fingerprint, ssh_key

from edgepolicy.bundle_format import read_tar_gz

pytestmark = pytest.mark.usefixtures("stand_in_library")


def _config(source: str, target: Target, opa: Path, tmp_path: Path, rounds: int) -> WatchConfig:
    return WatchConfig(
        source=source,
        branch="main",
        targets=[target],
        opa=opa,
        workdir=tmp_path / "work",
        bundle_name="edgepolicy.tar.gz",
        interval=0,
        max_iterations=rounds,
    )


def _published(out: Path) -> tuple[str, int]:
    files = read_tar_gz((out / "edgepolicy.tar.gz").read_bytes(), source="out")
    policies = json.loads(files["edgepolicy/policies/data.json"])
    revision = json.loads(files[".manifest"])["revision"]
    return revision, policies["finops"]["ai-workloads"]["edge-ai-inference-cost-policy"]["spec"][
        "autoScale"
    ]["maxReplicas"]


def test_each_new_commit_and_a_revert_are_published(tmp_path: Path, opa: Path) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy(max_replicas=3))
    first = repo.commit("first")
    out = tmp_path / "served"
    seen: list[tuple[str, int]] = []
    steps: list[Callable[[], str]] = [
        lambda: repo.commit("nothing new") and repo.git("reset", "--quiet", "--hard", first),
        lambda: (repo.write("cost.yaml", finops_policy(max_replicas=5)), repo.commit("five"))[1],
        lambda: repo.revert(repo.git("rev-parse", "HEAD")),
    ]

    def between_rounds(_: float) -> None:
        seen.append(_published(out))
        steps[len(seen) - 1]()

    lines: list[str] = []
    errors: list[str] = []
    config = _config(str(repo.path), Target("dir", str(out)), opa, tmp_path, 4)
    state = watch(config, lines.append, errors.append, sleep=between_rounds)
    seen.append(_published(out))
    revert = repo.git("rev-parse", "HEAD")
    five = repo.git("rev-parse", "HEAD~1")
    assert seen == [(first, 3), (first, 3), (five, 5), (revert, 3)]
    assert state.errors == errors == [] and state.published == revert
    assert sum(line.startswith("published ") for line in lines) == 3
    manifest = read_tar_gz((out / "edgepolicy.tar.gz").read_bytes(), source="out")[".manifest"]
    assert json.loads(manifest)["metadata"]["source"] == "local"  # not the local path


def test_a_bad_commit_is_reported_once_and_the_last_good_bundle_stays(
    tmp_path: Path, opa: Path
) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy())
    good = repo.commit("good")
    out = tmp_path / "served"

    def break_policy(_: float) -> None:
        if repo.commits == 1:
            repo.write("cost.yaml", finops_policy(max_cpu_cores="eight"))
            repo.commit("bad")

    lines: list[str] = []
    errors: list[str] = []
    config = _config(str(repo.path), Target("dir", str(out)), opa, tmp_path, 3)
    state = watch(config, lines.append, errors.append, sleep=break_policy)
    assert _published(out)[0] == good
    assert state.published == good
    assert len(state.errors) == 1
    assert errors == [f"commit {state.failed} not published: {state.errors[0]}"]
    assert not any("not published" in line for line in lines)
    assert "spec.costLimits.maxCPUCores" in state.errors[0]


def test_unreachable_repository_is_reported_without_credentials(tmp_path: Path, opa: Path) -> None:
    config = _config(
        "https://user:hunter2@127.0.0.1:9/policies.git",
        Target("dir", str(tmp_path / "out")),
        opa,
        tmp_path,
        1,
    )
    lines: list[str] = []
    state = watch(config, lines.append, lines.append)
    assert state.published is None
    assert "cannot fetch https://127.0.0.1:9/policies.git" in lines[0]
    assert "hunter2" not in " ".join(lines + state.errors)


def test_publish_failures_are_reported_without_the_target_credentials(
    tmp_path: Path, opa: Path
) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy())
    repo.commit("first")
    target = Target("http", "http://ci:hunter2@127.0.0.1:9/edgepolicy.tar.gz")
    config = _config(str(repo.path), target, opa, tmp_path, 1)
    errors: list[str] = []
    state = watch(config, errors.append, errors.append)
    assert state.published is None
    assert errors[0].startswith("round 1: cannot reach http://127.0.0.1:9/edgepolicy.tar.gz")
    assert "hunter2" not in " ".join(errors + state.errors)


@pytest.mark.parametrize("scope", ["tip", "all"])
def test_an_unsigned_commit_is_skipped_and_the_last_good_revision_stays(
    tmp_path: Path, opa: Path, scope: str
) -> None:
    keys = tmp_path / "keys"
    alice = ssh_key(keys, "alice")
    signers = tmp_path / "allowed_signers"
    signers.write_text(allowed_signer("alice@example.com", alice))
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy(max_replicas=3))
    good = repo.commit("good", ssh_key=alice)
    out = tmp_path / "served"
    seen: list[tuple[str, int]] = []
    commits: list[str] = []

    def next_round(_: float) -> None:
        seen.append(_published(out))
        if len(seen) == 1:
            repo.write("cost.yaml", finops_policy(max_replicas=300))
            commits.append(repo.commit("loosen every limit, unsigned"))
        elif len(seen) == 3:
            repo.write("cost.yaml", finops_policy(max_replicas=5))
            commits.append(repo.commit("signed on top", ssh_key=alice))

    lines: list[str] = []
    errors: list[str] = []
    config = replace(
        _config(str(repo.path), Target("dir", str(out)), opa, tmp_path, 4),
        trust=TrustPolicy(allowed_signers=signers, scope=scope),
    )
    watch(config, lines.append, errors.append, sleep=next_round)
    seen.append(_published(out))
    unsigned, signed = commits
    assert errors[0].startswith(
        f"commit {unsigned} not published: untrusted commit {unsigned} by Policy Author "
        "<author@example.com>: unsigned; "
    )
    assert errors[0].endswith(f"; revision {good} stays published")
    if scope == "tip":  # the signed commit vouches for what it builds on
        assert seen == [(good, 3), (good, 3), (good, 3), (signed, 5)]
        assert len(errors) == 1
    else:  # every commit since the last published one must be signed
        assert seen == [(good, 3)] * 4
        assert errors[1].startswith(f"commit {signed} not published: untrusted commit {unsigned} ")
        assert len(errors) == 2
    archive = (out / "edgepolicy.tar.gz").read_bytes()
    manifest = json.loads(read_tar_gz(archive, source="out")[".manifest"])
    assert manifest["metadata"]["signer"]["principal"] == "alice@example.com"
    signed_by = f"commit signed by alice@example.com ({ssh_fingerprint(alice)})"
    assert lines[0].endswith(f"(revision {good}), {signed_by}")


def test_a_branch_reset_to_an_older_commit_is_not_published(tmp_path: Path, opa: Path) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy(max_replicas=3))
    first = repo.commit("first")
    repo.write("cost.yaml", finops_policy(max_replicas=5))
    second = repo.commit("second")
    out = tmp_path / "served"
    rounds: list[str] = []

    def reset(_: float) -> None:
        rounds.append(_published(out)[0])
        if len(rounds) == 1:
            repo.git("reset", "--quiet", "--hard", first)

    errors: list[str] = []
    config = _config(str(repo.path), Target("dir", str(out)), opa, tmp_path, 3)
    state = watch(config, [].append, errors.append, sleep=reset)
    assert rounds == [second, second] and _published(out)[0] == second
    assert len(errors) == 1  # reported once, not every round
    assert errors[0].startswith(f"commit {first} not published: refusing to replace revision")
    assert f"is an ancestor of {second}" in errors[0]
    assert errors[0].endswith(f"; revision {second} stays published")
    assert state.failed == first


def test_scope_all_checks_only_the_commits_since_the_last_published_revision(
    tmp_path: Path, opa: Path
) -> None:
    keys = tmp_path / "keys"
    alice, bob = ssh_key(keys, "alice"), ssh_key(keys, "bob")
    signers = tmp_path / "allowed_signers"
    signers.write_text(allowed_signer("alice@example.com", alice) + allowed_signer("b@x", bob))
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy(max_replicas=3))
    repo.commit("by bob", ssh_key=bob)
    out = tmp_path / "served"

    def bob_leaves(_: float) -> None:  # bob's key is withdrawn after his commit was published
        signers.write_text(allowed_signer("alice@example.com", alice))
        repo.write("cost.yaml", finops_policy(max_replicas=4))
        repo.commit("by alice", ssh_key=alice)

    errors: list[str] = []
    config = replace(
        _config(str(repo.path), Target("dir", str(out)), opa, tmp_path, 2),
        trust=TrustPolicy(allowed_signers=signers, scope="all"),
    )
    state = watch(config, [].append, errors.append, sleep=bob_leaves)
    assert errors == []
    assert _published(out) == (repo.git("rev-parse", "HEAD"), 4)
    assert state.published == repo.git("rev-parse", "HEAD")
