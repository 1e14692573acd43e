"""Publishing targets."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bundles.archive import tar_gz
from bundles.configmap import MAX_CONFIGMAP_BYTES, configmap_body, publish_configmap
from bundles.publish import Target, bundle_revision, parse_target, publish
from edgepolicy.errors import BundleError, UsageError
from edgepolicy.kube import ApiResponse, KubeApi, KubernetesApiError

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


class StubApi(KubeApi):
    """Answers each request with the next of ``statuses`` (or raises ``error``)."""

    def __init__(self, *statuses: int, error: Exception | None = None) -> None:
        super().__init__("https://api.invalid", ssl_context=None)
        self.statuses = list(statuses)
        self.error = error
        self.calls: list[tuple[str, str, Any]] = []

    def request(
        self, method: str, path: str, *, timeout: float, body: Mapping[str, Any] | None = None
    ) -> ApiResponse:
        self.calls.append((method, path, body))
        if self.error is not None:
            raise self.error
        return ApiResponse(self.statuses.pop(0), b'{"message": "namespaces \\"opa\\" not found"}')


def test_configmap_is_replaced_when_it_exists() -> None:
    api = StubApi(200)
    publish_configmap(api, "opa", "bundle", ARCHIVE, "abc123")
    ((method, path, body),) = api.calls
    assert (method, path) == ("PUT", "/api/v1/namespaces/opa/configmaps/bundle")
    assert body == configmap_body("opa", "bundle", ARCHIVE, "abc123")


def test_configmap_is_created_when_absent() -> None:
    api = StubApi(404, 201)
    publish_configmap(api, "opa", "bundle", ARCHIVE, "abc123")
    assert [(m, p) for m, p, _ in api.calls] == [
        ("PUT", "/api/v1/namespaces/opa/configmaps/bundle"),
        ("POST", "/api/v1/namespaces/opa/configmaps"),
    ]


def test_configmap_refusals_and_failures_are_bundle_errors() -> None:
    with pytest.raises(BundleError, match='refused ConfigMap opa/b: HTTP 404: namespaces "opa"'):
        publish_configmap(StubApi(404, 404), "opa", "b", ARCHIVE, "r")
    unreachable = StubApi(error=KubernetesApiError("connection refused"))
    with pytest.raises(BundleError, match="cannot publish ConfigMap opa/b: connection refused"):
        publish_configmap(unreachable, "opa", "b", ARCHIVE, "r")


def test_configmap_kubeconfig_problems_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="cannot read it"):
        publish(ARCHIVE, Target("configmap", "opa/b"))
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: []\n")
    with pytest.raises(UsageError, match="no context named 'c'"):
        publish(ARCHIVE, Target("configmap", "opa/b"), kubeconfig=str(config))
