"""The `edgepolicy bundle` command line (real Git and OPA, stand-in library)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from edgepolicy.bundles.publish import bundle_revision
from policyrepo import PolicyRepo, finops_policy

from edgepolicy.bundle_format import read_tar_gz
from edgepolicy.cli import main

pytestmark = pytest.mark.usefixtures("stand_in_library")


@pytest.fixture
def repo(tmp_path: Path) -> PolicyRepo:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy())
    repo.commit("first")
    return repo


def test_build_then_publish(
    repo: PolicyRepo, tmp_path: Path, rsa_key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle.tar.gz"
    args = ["bundle", "build", "--repo", str(repo.path), "--out", str(out)]
    assert main([*args, "--signing-key", str(rsa_key_file), "--key-id", "k1"]) == 0
    head = repo.git("rev-parse", "HEAD")
    assert f"revision {head}, 1 policies, signed (RS256, key id k1)" in capsys.readouterr().out
    assert bundle_revision(out.read_bytes(), "out") == head
    served = tmp_path / "served"
    assert main(["bundle", "publish", str(out), "--to", f"dir:{served}", "--name", "e.tar.gz"]) == 0
    assert (served / "e.tar.gz").read_bytes() == out.read_bytes()


def test_source_flag_names_the_bundle_source(
    repo: PolicyRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle.tar.gz"
    args = ["bundle", "build", "--repo", str(repo.path), "--out", str(out)]
    assert main([*args, "--source", "https://u:pw@git.example.com/policies.git"]) == 0
    manifest = json.loads(read_tar_gz(out.read_bytes(), source="out")[".manifest"])
    assert manifest["metadata"]["source"] == "https://git.example.com/policies.git"
    assert main([*args, "--source", ""]) == 2
    assert "--source must not be empty" in capsys.readouterr().err


def test_bad_policy_exits_2_with_file_and_field(
    repo: PolicyRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("cost.yaml", finops_policy(max_cpu_cores=0))
    repo.commit("zero cores")
    out = tmp_path / "out" / "bundle.tar.gz"
    out.parent.mkdir()
    out.write_bytes(b"the bundle built before")
    assert main(["bundle", "build", "--repo", str(repo.path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepolicy: error: cost.yaml:1: FinOpsPolicy ai-workloads/")
    assert "maxCPUCores" in err and "Traceback" not in err
    assert [p.name for p in out.parent.iterdir()] == ["bundle.tar.gz"]  # nothing added
    assert out.read_bytes() == b"the bundle built before"  # nor truncated


def test_a_build_that_cannot_be_written_leaves_the_old_bundle_whole(
    repo: PolicyRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out" / "bundle.tar.gz"
    out.parent.mkdir()
    out.write_bytes(b"the bundle built before")

    def full_disk(fd: int) -> None:  # the new bundle's bytes are in the file, not yet safe
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("edgepolicy.bundles.atomic_write.os.fsync", full_disk)
    assert main(["bundle", "build", "--repo", str(repo.path), "--out", str(out)]) == 2
    assert f"cannot write {out}: No space left on device" in capsys.readouterr().err
    assert [p.name for p in out.parent.iterdir()] == ["bundle.tar.gz"]  # no temporary left
    assert out.read_bytes() == b"the bundle built before"


def test_key_id_without_key_is_a_usage_error(
    repo: PolicyRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bundle", "build", "--repo", str(repo.path), "--out", str(tmp_path / "b.tar.gz")]
    assert main([*args, "--key-id", "k"]) == 2
    assert "--key-id needs --signing-key" in capsys.readouterr().err


def test_key_without_key_id_is_a_usage_error(
    repo: PolicyRepo, tmp_path: Path, rsa_key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bundle", "build", "--repo", str(repo.path), "--out", str(tmp_path / "b.tar.gz")]
    assert main([*args, "--signing-key", str(rsa_key_file)]) == 2
    assert "--key-id is required with --signing-key" in capsys.readouterr().err
    assert not (tmp_path / "b.tar.gz").exists()


def test_watch_once_from_a_url(
    repo: PolicyRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = tmp_path / "served"
    args = ["bundle", "watch", "--repo", repo.path.as_uri(), "--once", "--to", f"dir:{served}"]
    assert main([*args, "--workdir", str(tmp_path / "w")]) == 0
    assert "published " in capsys.readouterr().out
    assert (served / "edgepolicy.tar.gz").exists()


def test_watch_once_on_a_missing_branch_exits_1(
    repo: PolicyRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bundle", "watch", "--repo", str(repo.path), "--branch", "nope", "--once"]
    assert main([*args, "--to", f"dir:{tmp_path}", "--workdir", str(tmp_path / "w")]) == 1
    captured = capsys.readouterr()
    assert "revision 'refs/heads/nope' is not a commit" in captured.err
    assert captured.out == ""


def test_watch_reports_a_commit_it_cannot_publish_on_stderr(
    repo: PolicyRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("cost.yaml", finops_policy(max_cpu_cores=0))
    bad = repo.commit("zero cores")
    args = ["bundle", "watch", "--repo", str(repo.path), "--once", "--to", f"dir:{tmp_path}"]
    assert main([*args, "--workdir", str(tmp_path / "w")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"commit {bad} not published: cost.yaml:1: ")
    assert captured.out == ""


def test_publishing_a_file_that_is_no_bundle_names_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "notgz.tar.gz"
    junk.write_bytes(b"plain text, not gzip")
    assert main(["bundle", "publish", str(junk), "--to", f"dir:{tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert f"{junk}: not a gzipped tar bundle" in err
    assert "edgepolicy.tar.gz" not in err
