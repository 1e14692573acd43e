"""Publishing targets."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bundles.archive import tar_gz
from bundles.configmap import MAX_CONFIGMAP_BYTES, configmap_body, kubeconfig_path, load_kubeconfig
from bundles.publish import Target, bundle_revision, parse_target, publish
from edgepolicy.errors import BundleError, UsageError

ARCHIVE = tar_gz({".manifest": b'{"revision":"abc123"}'})


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("dir:/srv/bundles", Target("dir", "/srv/bundles")),
        (
            "https://bundles.example.com/edge.tar.gz",
            Target("http", "https://bundles.example.com/edge.tar.gz"),
        ),
        ("configmap:opa/edgepolicy-bundle", Target("configmap", "opa/edgepolicy-bundle")),
    ],
)
def test_parse_target(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(
    "text", ["dir:", "s3://bucket/x", "configmap:nons", "configmap:a/b/c", "/tmp/x"]
)
def test_bad_targets_say_what_is_expected(text: str) -> None:
    with pytest.raises(UsageError, match="expected dir:PATH, http"):
        parse_target(text)


def test_publish_into_a_directory_or_file(tmp_path: Path) -> None:
    assert "revision abc123" in publish(
        ARCHIVE, Target("dir", str(tmp_path)), bundle_name="edge.tar.gz"
    )
    assert (tmp_path / "edge.tar.gz").read_bytes() == ARCHIVE
    publish(ARCHIVE, Target("dir", str(tmp_path / "sub" / "named.tar.gz")))
    assert (tmp_path / "sub" / "named.tar.gz").read_bytes() == ARCHIVE


def test_only_bundles_are_published(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no .manifest with a revision"):
        publish(tar_gz({"x.rego": b"package x"}), Target("dir", str(tmp_path)))
    with pytest.raises(BundleError, match="not a gzipped tar bundle"):
        bundle_revision(b"junk", "junk.tar.gz")


def test_configmap_carries_the_archive_and_revision() -> None:
    body = configmap_body("opa", "edgepolicy-bundle", ARCHIVE, "abc123")
    assert base64.b64decode(body["binaryData"]["bundle.tar.gz"]) == ARCHIVE
    assert body["metadata"]["annotations"] == {"policy.apexlogic.com/bundle-revision": "abc123"}


def test_configmap_size_limit_is_explained() -> None:
    with pytest.raises(
        BundleError, match=r"at most 1048576 bytes \(1 MiB\); publish to dir: or http"
    ):
        configmap_body("opa", "b", b"x" * (MAX_CONFIGMAP_BYTES + 1), "r")


def test_kubeconfig_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    assert kubeconfig_path(None) == tmp_path / "a"
    assert kubeconfig_path("/explicit") == Path("/explicit")


def test_kubeconfig_problems_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        load_kubeconfig(tmp_path / "missing")
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: []\n")
    with pytest.raises(UsageError, match="no context named 'c'"):
        load_kubeconfig(config)
