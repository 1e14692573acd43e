"""No silent rollback: publishing (dir, HTTP, ConfigMap) and the bundle service refuse older
revisions, by Git ancestry when a repository is at hand and by recorded commit time otherwise."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import urllib3
from bundleservice import bundle_service
from edgepolicy.bundles.configmap import BUNDLE_KEY
from edgepolicy.bundles.layout import manifest_json
from edgepolicy.bundles.publish import Target, bundle_revision, publish
from edgepolicy.bundles.rollback import BundleRevision, check_replacement, rollback_reason
from policyrepo import BASE_TIME, PolicyRepo, finops_policy

from edgepolicy.bundle_format import tar_gz
from edgepolicy.cli import main
from edgepolicy.errors import BundleError, RollbackError
from edgepolicy.kube import ApiResponse

TOKEN = "upload-token-for-tests"


def _bundle(repo: PolicyRepo, commit: str) -> bytes:
    """A bundle of ``commit`` as the builder records it (times from Git)."""
    author, committed = repo.git("show", "-s", "--format=%at %ct", commit).split()
    manifest = manifest_json(commit, int(author), "local", commit_time=int(committed))
    return tar_gz({".manifest": manifest})


@pytest.fixture
def history(tmp_path: Path) -> tuple[PolicyRepo, dict[str, str]]:
    """one → two (loosened) → revert of two; plus a side commit older than two, not its ancestor."""
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy(max_replicas=3))
    one = repo.commit("one")
    repo.git("checkout", "--quiet", "-b", "side")
    side = repo.commit("side")
    repo.git("checkout", "--quiet", "main")
    repo.write("cost.yaml", finops_policy(max_replicas=30))
    two = repo.commit("two")
    revert = repo.revert(two)
    return repo, {"one": one, "side": side, "two": two, "revert": revert}


def _revision(name: str, commit_time: int | None, author_time: int | None = None) -> BundleRevision:
    return BundleRevision(name, commit_time, author_time)


def test_rollback_by_recorded_time() -> None:
    new, old = _revision("b", BASE_TIME + 60), _revision("a", BASE_TIME)
    assert rollback_reason(new, old) == (
        "it was committed at 2026-01-01T00:00:00Z, before b (2026-01-01T00:01:00Z)"
    )
    assert rollback_reason(old, new) is None
    assert rollback_reason(new, new) is None  # republishing the same revision
    assert rollback_reason(new, _revision("c", BASE_TIME + 60)) is None  # same second
    # a bundle from before commit times were recorded is ordered by author time
    assert rollback_reason(_revision("b", None, BASE_TIME), _revision("a", BASE_TIME - 1, 0))
    # a candidate without any time cannot be shown newer; a current one without any is replaced
    assert "records no commit time" in str(rollback_reason(new, _revision("x", None)))
    assert rollback_reason(_revision("x", None), old) is None


def test_ancestry_decides_when_the_repository_knows_both_commits(
    history: tuple[PolicyRepo, dict[str, str]],
) -> None:
    repo, c = history
    rev = {name: BundleRevision(commit, None, None) for name, commit in c.items()}
    assert rollback_reason(rev["two"], rev["one"], repo.path) == f"it is an ancestor of {c['two']}"
    assert rollback_reason(rev["two"], rev["revert"], repo.path) is None
    # older by time but not an ancestor: a new line of history, not a rollback
    older_side = BundleRevision(c["side"], BASE_TIME, None)
    assert rollback_reason(BundleRevision(c["two"], BASE_TIME + 600, None), older_side) is not None
    assert rollback_reason(rev["two"], rev["side"], repo.path) is None
    # a commit the repository does not know falls back to the recorded time
    unknown = BundleRevision("f" * 40, BASE_TIME, None)
    assert "committed at" in str(
        rollback_reason(BundleRevision(c["two"], BASE_TIME + 600, None), unknown, repo.path)
    )


def test_publish_to_a_directory_refuses_a_rollback_unless_allowed(
    history: tuple[PolicyRepo, dict[str, str]], tmp_path: Path
) -> None:
    repo, c = history
    bundles = {name: _bundle(repo, commit) for name, commit in c.items()}
    target = Target("dir", str(tmp_path / "out"))
    published = tmp_path / "out" / "edgepolicy.tar.gz"
    publish(bundles["two"], target)
    publish(bundles["two"], target)  # the same revision again: fine
    for repo_path in (None, repo.path):
        with pytest.raises(RollbackError) as refused:
            publish(bundles["one"], target, repo=repo_path)
        assert str(refused.value).startswith(
            f"refusing to replace revision {c['two']} at {published} by revision {c['one']}: "
        )
        assert str(refused.value).endswith(
            "publish a git revert instead, or allow the rollback explicitly"
        )  # the library names no flag: the CLI adds it (test_publish_cli_flags)
        assert bundle_revision(published.read_bytes(), "out") == c["two"]
    assert "is an ancestor of" in str(refused.value)  # with the repository
    publish(bundles["one"], target, allow_rollback=True)
    assert bundle_revision(published.read_bytes(), "out") == c["one"]
    publish(bundles["two"], target)
    publish(bundles["revert"], target, repo=repo.path)  # a revert is a new commit
    assert bundle_revision(published.read_bytes(), "out") == c["revert"]


def test_an_unreadable_current_bundle_is_not_silently_replaced(tmp_path: Path) -> None:
    (tmp_path / "edgepolicy.tar.gz").write_bytes(b"not a bundle")
    new = tar_gz({".manifest": manifest_json("a" * 40, BASE_TIME, "local", commit_time=BASE_TIME)})
    with pytest.raises(RollbackError, match="cannot tell whether revision a{40} is older"):
        publish(new, Target("dir", str(tmp_path)))
    publish(new, Target("dir", str(tmp_path)), allow_rollback=True)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    directory = tmp_path / "served"
    directory.mkdir()
    (tmp_path / "token").write_text(TOKEN)
    return directory


def _put(url: str, body: bytes) -> urllib3.BaseHTTPResponse:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/gzip"}
    return urllib3.request("PUT", url, body=body, headers=headers, retries=False, timeout=10)


def test_the_service_refuses_an_older_upload_by_recorded_time(
    history: tuple[PolicyRepo, dict[str, str]], served: Path
) -> None:
    repo, c = history
    with bundle_service(served, token_file=served.parent / "token") as service:
        url = f"{service.url}/edge/edgepolicy.tar.gz"
        assert _put(url, _bundle(repo, c["two"])).status == 201
        refused = _put(url, _bundle(repo, c["one"]))
        assert refused.status == 409
        message = refused.data.decode()
        assert message.startswith(
            f"refusing to replace revision {c['two']} at /edge/edgepolicy.tar.gz by revision "
            f"{c['one']}: it was committed at 2026-01-01T00:01:00Z, before {c['two']}"
        )
        assert message.rstrip().endswith(
            "; publish a git revert instead (this service refuses rollbacks from every uploader; "
            "only its operator can allow them)"
        )
        assert str(served) not in message  # the server's paths stay private
        assert urllib3.request("GET", url).data == _bundle(repo, c["two"])
        assert _put(url, _bundle(repo, c["revert"])).status == 201
        # the publisher sees the service's refusal
        with pytest.raises(BundleError, match="HTTP 409 refusing to replace") as error:
            publish(_bundle(repo, c["one"]), Target("http", url), token=TOKEN, allow_rollback=True)
        assert str(error.value).endswith("only its operator can allow them)")
    flags = ("--allow-rollback",)
    with bundle_service(served, *flags, token_file=served.parent / "token") as service:
        url = f"{service.url}/edge/edgepolicy.tar.gz"
        assert _put(url, _bundle(repo, c["one"])).status == 201


def test_publish_over_http_checks_ancestry_itself_with_the_repository(
    history: tuple[PolicyRepo, dict[str, str]], served: Path
) -> None:
    repo, c = history
    flags = ("--allow-rollback",)  # a service that would take anything
    with bundle_service(served, *flags, token_file=served.parent / "token") as service:
        url = f"{service.url}/edgepolicy.tar.gz"
        publish(_bundle(repo, c["two"]), Target("http", url), token=TOKEN)
        with pytest.raises(RollbackError, match=f"it is an ancestor of {c['two']}"):
            publish(_bundle(repo, c["one"]), Target("http", url), token=TOKEN, repo=repo.path)
        assert urllib3.request("GET", url).data == _bundle(repo, c["two"])


class _ConfigMaps:
    """A stand-in Kubernetes API holding ConfigMaps, with resourceVersion conflicts."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0

    def get_object(self, path: str, *, timeout: float) -> dict[str, Any] | None:
        return self.objects.get(path)

    def request(
        self, method: str, path: str, *, timeout: float, body: Mapping[str, Any] | None = None
    ) -> ApiResponse:
        assert body is not None
        key = path if method == "PUT" else f"{path}/{body['metadata']['name']}"
        current = self.objects.get(key)
        if method == "PUT" and current is None:
            return ApiResponse(404, b"{}")
        wanted = body["metadata"].get("resourceVersion")
        if current is not None and wanted not in (None, current["metadata"]["resourceVersion"]):
            return ApiResponse(409, b'{"message": "the object has been modified"}')
        self.version += 1
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        self.objects[key] = stored
        return ApiResponse(200 if method == "PUT" else 201, b"{}")

    def close(self) -> None:
        pass


def test_publish_into_a_configmap_refuses_a_rollback(
    history: tuple[PolicyRepo, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, c = history
    api = _ConfigMaps()
    monkeypatch.setattr("edgepolicy.bundles.publish.kube.from_kubeconfig", lambda *_, **__: api)
    target = Target("configmap", "opa/edgepolicy-bundle")
    stored = "/api/v1/namespaces/opa/configmaps/edgepolicy-bundle"
    publish(_bundle(repo, c["two"]), target)
    with pytest.raises(RollbackError, match="at ConfigMap opa/edgepolicy-bundle by revision"):
        publish(_bundle(repo, c["one"]), target, repo=repo.path)
    archive = base64.b64decode(api.objects[stored]["binaryData"][BUNDLE_KEY])
    assert bundle_revision(archive, "cm") == c["two"]
    publish(_bundle(repo, c["revert"]), target)
    publish(_bundle(repo, c["one"]), target, allow_rollback=True)
    archive = base64.b64decode(api.objects[stored]["binaryData"][BUNDLE_KEY])
    assert bundle_revision(archive, "cm") == c["one"]


def test_check_replacement_without_a_current_bundle_accepts_anything() -> None:
    check_replacement(None, tar_gz({".manifest": b'{"revision":"r"}'}), where="x")


def test_publish_cli_flags(
    history: tuple[PolicyRepo, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, c = history
    for name in ("one", "two"):
        (tmp_path / f"{name}.tar.gz").write_bytes(_bundle(repo, c[name]))
    to = ["--to", f"dir:{tmp_path / 'out'}"]
    assert main(["bundle", "publish", str(tmp_path / "two.tar.gz"), *to]) == 0
    one = ["bundle", "publish", str(tmp_path / "one.tar.gz"), *to]
    assert main([*one, "--repo", str(repo.path)]) == 2
    err = capsys.readouterr().err
    assert f"it is an ancestor of {c['two']}" in err and "--allow-rollback" in err
    assert main([*one, "--repo", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a Git repository" in capsys.readouterr().err
    assert main([*one, "--allow-rollback"]) == 0
    assert f"(revision {c['one']})" in capsys.readouterr().out


def test_publish_orders_commits_by_the_repository_it_runs_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    one = repo.commit("one")
    repo.commits -= 1  # the next commit in the same second: its time cannot order them
    two = repo.commit("two")
    for name, commit in (("one", one), ("two", two)):
        (tmp_path / f"{name}.tar.gz").write_bytes(_bundle(repo, commit))
    to = ["--to", f"dir:{tmp_path / 'out'}"]
    monkeypatch.chdir(repo.path)
    assert main(["bundle", "publish", str(tmp_path / "two.tar.gz"), *to]) == 0
    assert main(["bundle", "publish", str(tmp_path / "one.tar.gz"), *to]) == 2
    assert f"it is an ancestor of {two}" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # not a repository: by recorded time, which cannot tell
    assert main(["bundle", "publish", str(tmp_path / "one.tar.gz"), *to]) == 0
