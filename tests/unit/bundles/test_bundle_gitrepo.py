"""Reading a repository from Git objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgepolicy.bundles.gitrepo import read_snapshot, redact_url, resolve_commit, source_label
from policyrepo import BASE_TIME, PolicyRepo

from edgepolicy.errors import UsageError


def _everything(path: str) -> bool:
    return True


def test_reads_committed_content_not_the_working_tree(tmp_path: Path) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("a.yaml", "committed: true\n")
    first = repo.commit("first")
    (repo.path / "a.yaml").write_text("uncommitted: true\n")
    (repo.path / "untracked.yaml").write_text("x: 1\n")
    snapshot = read_snapshot(repo.path, "HEAD", _everything)
    assert snapshot.commit == first
    assert snapshot.files == {"a.yaml": b"committed: true\n"}
    assert snapshot.author_time == snapshot.commit_time == BASE_TIME + 60


def test_reads_an_older_revision_and_filters_paths(tmp_path: Path) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("p/a.yaml", "v: 1\n")
    repo.write("notes.txt", "ignored\n")
    first = repo.commit("first")
    repo.write("p/a.yaml", "v: 2\n")
    repo.commit("second")
    snapshot = read_snapshot(repo.path, first, lambda path: path.endswith(".yaml"))
    assert snapshot.files == {"p/a.yaml": b"v: 1\n"}


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("real.yaml", "v: 1\n")
    (repo.path / "link.yaml").symlink_to("/etc/passwd")
    repo.commit("link")
    assert set(read_snapshot(repo.path, "HEAD", _everything).files) == {"real.yaml"}


def test_unknown_revision_and_missing_repository_are_usage_errors(tmp_path: Path) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.commit("empty")
    with pytest.raises(UsageError, match="revision 'nope' is not a commit"):
        resolve_commit(repo.path, "nope")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_commit(tmp_path / "missing", "HEAD")
    with pytest.raises(UsageError, match="is not a commit"):
        resolve_commit(tmp_path, "HEAD")


def test_redact_url_removes_credentials() -> None:
    assert (
        redact_url("https://user:s3cret@git.example.com/p.git") == "https://git.example.com/p.git"
    )
    assert redact_url("https://git.example.com:8443/p.git") == "https://git.example.com:8443/p.git"
    assert redact_url("/srv/repos/policies") == "/srv/repos/policies"
    assert redact_url("http://u:p@[::1]:8080/x.tar.gz") == "http://[::1]:8080/x.tar.gz"
    assert redact_url("https://u:p@w@Host.example.com/x") == "https://Host.example.com/x"


@pytest.mark.parametrize(
    ("location", "label"),
    [
        ("https://u:p@git.example.com/p.git", "https://git.example.com/p.git"),
        ("ssh://git@git.example.com:2222/p.git", "ssh://git.example.com:2222/p.git"),
        ("git@git.example.com:team/p.git", "git.example.com:team/p.git"),
        ("u:p@git.example.com:team/p.git", "git.example.com:team/p.git"),
        ("file:///srv/git/p.git", "local"),
        ("/srv/git/p.git", "local"),
        ("../p", "local"),
        ("./odd:name", "local"),
    ],
)
def test_source_label_never_names_local_paths_or_credentials(location: str, label: str) -> None:
    assert source_label(location) == label
