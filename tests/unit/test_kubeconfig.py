"""Kubeconfig loading and merging, case by case as client-go's loader_test.go states kubectl's
rules (merged KUBECONFIG lists, first file wins, explicit files alone, relative paths)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepolicy.kubeconfig import KubeconfigError, load, search_paths, select


def _config(
    users: dict[str, Any] | None = None,
    clusters: dict[str, Any] | None = None,
    contexts: dict[str, Any] | None = None,
    current: str | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    document["users"] = [{"name": n, "user": u} for n, u in (users or {}).items()]
    document["clusters"] = [{"name": n, "cluster": c} for n, c in (clusters or {}).items()]
    document["contexts"] = [{"name": n, "context": c} for n, c in (contexts or {}).items()]
    if current is not None:
        document["current-context"] = current
    return document


ALFA = _config(
    users={"red-user": {"token": "red-token"}},
    clusters={"cow-cluster": {"server": "https://cow.org:8443"}},
    contexts={"federal-context": {"user": "red-user", "cluster": "cow-cluster"}},
)
BRAVO = _config(
    users={"black-user": {"token": "black-token"}},
    clusters={"pig-cluster": {"server": "https://pig.org:8443"}},
    contexts={"queen-anne-context": {"user": "black-user", "cluster": "pig-cluster"}},
)
CONFLICT_ALFA = _config(
    users={"red-user": {"token": "a-different-red-token"}, "yellow-user": {"token": "yellow"}},
    clusters={
        "cow-cluster": {"server": "https://a-different-cow.org", "insecure-skip-tls-verify": True},
        "donkey-cluster": {"server": "https://donkey.org", "insecure-skip-tls-verify": True},
    },
    current="federal-context",
)


def _write(path: Path, document: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def _env(*paths: Path | str) -> dict[str, str]:
    return {"KUBECONFIG": os.pathsep.join(str(path) for path in paths)}


def test_an_explicit_file_is_read_alone(tmp_path: Path) -> None:
    """Example_noMergingOnExplicitPaths."""
    explicit = _write(tmp_path / "explicit", ALFA)
    listed = _write(tmp_path / "listed", CONFLICT_ALFA)
    config = load(explicit, _env(listed))
    assert set(config.users) == {"red-user"}
    assert config.users["red-user"] == {"token": "red-token"}
    assert config.current_context == ""
    assert config.files == (explicit,)


def test_the_first_file_to_define_a_name_wins_whole(tmp_path: Path) -> None:
    """Example_mergingSomeWithConflict: entries keep the first file's values, even fields the
    first left unset; new names from later files are added; current-context from the file that
    sets it."""
    first = _write(tmp_path / "a", ALFA)
    second = _write(tmp_path / "b", CONFLICT_ALFA)
    config = load(None, _env(first, second))
    assert config.users["red-user"] == {"token": "red-token"}
    assert config.users["yellow-user"] == {"token": "yellow"}
    assert config.clusters["cow-cluster"] == {"server": "https://cow.org:8443"}
    assert config.clusters["donkey-cluster"]["server"] == "https://donkey.org"
    assert config.current_context == "federal-context"
    access = select(config)
    assert (access.cluster_name, access.user_name) == ("cow-cluster", "red-user")


def test_everything_merges_without_conflicts(tmp_path: Path) -> None:
    """Example_mergingEverythingNoConflicts."""
    files = [_write(tmp_path / "a", ALFA), _write(tmp_path / "b", BRAVO)]
    config = load(None, _env(*files))
    assert set(config.contexts) == {"federal-context", "queen-anne-context"}
    assert set(config.clusters) == {"cow-cluster", "pig-cluster"}
    assert select(config, "queen-anne-context").user == {"token": "black-token"}


def test_current_context_comes_from_the_first_file_setting_it(tmp_path: Path) -> None:
    """TestConflictingCurrentContext."""
    first = _write(tmp_path / "a", _config(current="any-context-value"))
    second = _write(tmp_path / "b", _config(current="a-different-context"))
    assert load(None, _env(first, second)).current_context == "any-context-value"
    unset = _write(tmp_path / "c", _config())
    assert load(None, _env(unset, second)).current_context == "a-different-context"


def test_missing_files_of_the_list_are_skipped(tmp_path: Path) -> None:
    """TestToleratingMissingFiles; but with no file at all there is nothing to use."""
    real = _write(tmp_path / "real", ALFA)
    config = load(None, _env(tmp_path / "bogus1", real, tmp_path / "bogus2"))
    assert config.files == (real,)
    with pytest.raises(KubeconfigError, match="no kubeconfig found .tried .*bogus1, .*bogus2"):
        load(None, _env(tmp_path / "bogus1", tmp_path / "bogus2"))


def test_a_missing_explicit_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """TestNonExistentCommandLineFile."""
    with pytest.raises(KubeconfigError, match="bogus_file: no such file"):
        load(tmp_path / "bogus_file", {})


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """TestErrorReadingFile and TestErrorReadingNonFile."""
    bogus = _write(tmp_path / "bogus", "bogus value")
    with pytest.raises(KubeconfigError, match=f"{bogus}: not a kubeconfig"):
        load(bogus, {})
    with pytest.raises(KubeconfigError, match=f"{tmp_path}: cannot read it"):
        load(tmp_path, {})
    broken = _write(tmp_path / "broken", "clusters: [")
    with pytest.raises(KubeconfigError, match=f"{broken}: not valid YAML"):
        load(None, _env(broken))


def test_an_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    """TestLoadingEmptyMaps."""
    config = load(_write(tmp_path / "empty", ""), {})
    assert (config.clusters, config.users, config.contexts) == ({}, {}, {})


@pytest.mark.parametrize("section", ["clusters", "users", "contexts"])
def test_a_name_defined_twice_in_one_file_is_an_error(tmp_path: Path, section: str) -> None:
    """TestDuplicateClusterName, TestDuplicateContextName, TestDuplicateUserName."""
    key = section[:-1]
    document = {section: [{"name": "twice", key: {}}, {"name": "twice", key: {}}]}
    path = _write(tmp_path / "dup", document)
    with pytest.raises(KubeconfigError, match=f"{path}: duplicate name 'twice' in {section}"):
        load(path, {})


def test_relative_paths_resolve_against_the_file_that_defines_them(tmp_path: Path) -> None:
    """TestResolveRelativePaths: certificate files, tokenFile and an exec command with a path
    separator; a bare command name stays for the PATH lookup; absolute paths stay."""
    first = _write(
        tmp_path / "one" / "config",
        _config(
            users={
                "relative": {"client-certificate": "rel/cert", "client-key": "../rel/key"},
                "absolute": {"client-certificate": "/abs/cert", "tokenFile": "/abs/token"},
                "relative-cmd": {"exec": {"command": "../bin/plugin"}},
                "path-cmd": {"exec": {"command": "plugin"}},
            },
            clusters={"relative-server": {"certificate-authority": "../ca"}},
        ),
    )
    second = _write(
        tmp_path / "two" / "deeper" / "config",
        _config(
            users={"relative-2": {"tokenFile": "token"}},
            clusters={"relative-server-2": {"certificate-authority": "ca2"}},
        ),
    )
    config = load(None, _env(first, second))
    one, two = (tmp_path / "one").resolve(), (tmp_path / "two" / "deeper").resolve()
    assert config.users["relative"]["client-certificate"] == str(one / "rel/cert")
    assert config.users["relative"]["client-key"] == str(one / "../rel/key")
    assert config.users["absolute"] == {
        "client-certificate": "/abs/cert",
        "tokenFile": "/abs/token",
    }
    assert config.users["relative-cmd"]["exec"]["command"] == str(one / "../bin/plugin")
    assert config.users["path-cmd"]["exec"]["command"] == "plugin"
    assert config.clusters["relative-server"]["certificate-authority"] == str(one / "../ca")
    assert config.users["relative-2"]["tokenFile"] == str(two / "token")
    assert config.clusters["relative-server-2"]["certificate-authority"] == str(two / "ca2")


def test_search_paths_as_kubectl(tmp_path: Path) -> None:
    """TestLoadingGetLoadingPrecedence and TestDeduplicate."""
    assert search_paths(Path("/explicit/kubeconfig"), _env("/env/a")) == [
        Path("/explicit/kubeconfig")
    ]
    assert search_paths(None, _env("/env/a")) == [Path("/env/a")]
    assert search_paths(None, _env("/a", "", "/b", "/a", "/c", "/b")) == [
        Path("/a"),
        Path("/b"),
        Path("/c"),
    ]
    assert search_paths(None, {}) == [Path.home() / ".kube" / "config"]
    assert search_paths(None, {"KUBECONFIG": ""}) == [Path.home() / ".kube" / "config"]


def test_select_a_context_other_than_the_current_one(tmp_path: Path) -> None:
    config = load(None, _env(_write(tmp_path / "a", ALFA), _write(tmp_path / "b", BRAVO)))
    with pytest.raises(KubeconfigError, match="no current-context, and no context was chosen"):
        select(config)
    access = select(config, "queen-anne-context")
    assert access.context == "queen-anne-context"
    assert access.cluster == {"server": "https://pig.org:8443"}
    with pytest.raises(
        KubeconfigError,
        match="no context named 'nope' .contexts: federal-context, queen-anne-context.",
    ) as raised:
        select(config, "nope")
    assert str(tmp_path / "a") in str(raised.value) and str(tmp_path / "b") in str(raised.value)


def test_a_context_naming_a_missing_cluster_or_user_is_an_error(tmp_path: Path) -> None:
    config = load(
        _write(
            tmp_path / "c",
            _config(
                users={"u": {}},
                clusters={"c": {"server": "https://c"}},
                contexts={
                    "no-cluster": {"cluster": "gone", "user": "u"},
                    "no-user": {"cluster": "c", "user": "gone"},
                    "anonymous": {"cluster": "c"},
                },
            ),
        ),
        {},
    )
    with pytest.raises(KubeconfigError, match="context 'no-cluster': no cluster named 'gone'"):
        select(config, "no-cluster")
    with pytest.raises(KubeconfigError, match="context 'no-user': no user named 'gone'"):
        select(config, "no-user")
    anonymous = select(config, "anonymous")
    assert (anonymous.user_name, anonymous.user) == (None, {})
