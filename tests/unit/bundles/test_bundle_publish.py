"""Publishing targets."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from edgepolicy.bundles.configmap import MAX_CONFIGMAP_BYTES, configmap_body, publish_configmap
from edgepolicy.bundles.publish import Target, bundle_revision, parse_target, publish

from edgepolicy.bundle_format import tar_gz
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
        super().__init__("https://api.invalid")
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
    with pytest.raises(UsageError, match="no kubeconfig found .tried .*missing"):
        publish(ARCHIVE, Target("configmap", "opa/b"))
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: []\n")
    with pytest.raises(UsageError, match="no context named 'c'"):
        publish(ARCHIVE, Target("configmap", "opa/b"), kubeconfig=str(config))


class _Recorder(BaseHTTPRequestHandler):
    """Stores what each PUT carried; answers 201, or 401 for the path /deny."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_PUT(self) -> None:  # noqa: N802 - stdlib naming
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(401 if self.path == "/deny" else 201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_url_credentials_are_sent_as_basic_auth_and_never_shown(recorder: str) -> None:
    where = publish(ARCHIVE, Target("http", f"http://ci:hun%40ter2@{recorder}/x.tar.gz"))
    assert where == f"http://{recorder}/x.tar.gz (revision abc123)"
    basic = base64.b64encode(b"ci:hun@ter2").decode()
    assert _Recorder.seen == [("/x.tar.gz", f"Basic {basic}")]
    with pytest.raises(BundleError) as refused:
        publish(ARCHIVE, Target("http", f"http://ci:hunter2@{recorder}/deny"))
    assert str(refused.value).startswith(f"PUT http://{recorder}/deny failed: HTTP 401")
    with pytest.raises(BundleError) as unreachable:
        publish(ARCHIVE, Target("http", "http://ci:hunter2@127.0.0.1:9/x.tar.gz"))
    assert "cannot reach http://127.0.0.1:9/x.tar.gz" in str(unreachable.value)
    with pytest.raises(UsageError) as both:
        publish(ARCHIVE, Target("http", f"http://ci:hunter2@{recorder}/x"), token="t")
    assert "hunter2" not in str(refused.value) + str(unreachable.value) + str(both.value)


def test_a_bad_target_is_shown_without_credentials() -> None:
    with pytest.raises(UsageError) as error:
        parse_target("ftp://ci:hunter2@example.com/x.tar.gz")
    assert "ftp://example.com/x.tar.gz" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_the_command_line_names_the_kubeconfig_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgepolicy.cli import main

    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(ARCHIVE)
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nkind: Config\ncontexts: [{name: a, context: {}}]\n")
    argv = ["bundle", "publish", str(bundle), "--to", "configmap:opa/b"]
    assert main([*argv, "--kubeconfig", str(config), "--context", "nope"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"edgepolicy: error: --kubeconfig --context: kubeconfig {config}: ")
    assert "no context named 'nope' (contexts: a)" in error
