"""The registry client against a small in-process fake: Basic auth, redirects, digest checks.

The real registry (token auth, push, OPA pulling) is in tests/integration/test_bundle_oci.py;
this fake covers what that registry does not do: Basic challenges and redirecting blob reads
to storage on another origin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from edgepolicy.bundles.oci_artifact import LAYER_TYPE, pull_bundle
from edgepolicy.bundles.oci_registry import MANIFEST_TYPE, RegistryClient, parse_reference
from edgepolicy.bundles.registry_auth import ANONYMOUS, RegistryCredentials

from edgepolicy.bundle_format import tar_gz
from edgepolicy.errors import RegistryError

ARCHIVE = tar_gz({".manifest": b'{"revision":"abc123"}'})
BASIC = "Basic " + base64.b64encode(b"ci:hunter2").decode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Answers like a registry that wants Basic auth (or, with ``bearer``, a token) and
    redirects blob reads to ``storage``."""

    blobs: ClassVar[dict[str, bytes]] = {}
    manifest: ClassVar[bytes] = b""
    storage: ClassVar[str] = ""
    seen: ClassVar[list[tuple[str, str | None]]] = []
    bearer: ClassVar[bool] = False  # Bearer token flow instead of Basic
    by_digest: ClassVar[dict[str, bytes]] = {}  # manifests fetched by digest (index entries)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/storage/"):
            self._send(200, self.blobs[self.path.removeprefix("/storage/")])
        elif self.bearer:
            self._bearer()
        elif self.headers.get("Authorization") != BASIC:
            self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication"}]}',
                       {"WWW-Authenticate": 'Basic realm="fake"'})  # fmt: skip
        else:
            self._repository()

    def _bearer(self) -> None:
        """Anonymous ``/v2/``; a Bearer challenge on the repository; tokens from ``/token``."""
        realm = f"http://{self.headers['Host']}/token"
        if self.path == "/v2/":
            self._send(200, b"{}")
        elif self.path.startswith("/token?"):
            self._send(200, b'{"token":"t0k3n"}')
        elif self.headers.get("Authorization") != "Bearer t0k3n":
            challenge = f'Bearer realm="{realm}",service="fake",scope="repository:edge:pull"'
            self._send(401, b"", {"WWW-Authenticate": challenge})
        else:
            self._repository()

    def _repository(self) -> None:
        """What an authorised client gets."""
        if self.path == "/v2/":
            self._send(200, b"{}")
        elif self.path == "/v2/edge/manifests/v1":
            headers = {
                "Content-Type": MANIFEST_TYPE,
                "Docker-Content-Digest": _digest(self.manifest),
            }
            self._send(200, self.manifest, headers)
        elif self.path.removeprefix("/v2/edge/manifests/") in self.by_digest:
            self._send(200, self.by_digest[self.path.removeprefix("/v2/edge/manifests/")])
        elif self.path.startswith("/v2/edge/blobs/"):
            self._send(307, b"", {"Location": f"{self.storage}/storage/{self.path[15:]}"})
        else:
            self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


def _manifest(layer: bytes, size: int | None = None) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "layers": [{"mediaType": LAYER_TYPE, "digest": _digest(layer),
                    "size": len(layer) if size is None else size}],
    }).encode()  # fmt: skip


@pytest.fixture
def fake() -> Iterator[str]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Handler) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05})
               for s in servers]  # fmt: skip
    for thread in threads:
        thread.start()
    _Handler.seen = []
    _Handler.bearer = False
    _Handler.by_digest = {}
    _Handler.storage = f"http://127.0.0.1:{servers[1].server_address[1]}"
    _Handler.blobs = {_digest(ARCHIVE): ARCHIVE}
    _Handler.manifest = _manifest(ARCHIVE)
    yield f"127.0.0.1:{servers[0].server_address[1]}"
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join()


def _pull(registry: str, credentials: RegistryCredentials = ANONYMOUS, tag: str = "v1") -> Any:
    ref = parse_reference(f"oci://{registry}/edge:{tag}")
    with RegistryClient(ref, credentials) as client:
        return pull_bundle(client)


def test_basic_auth_and_a_redirect_that_does_not_carry_the_credentials(fake: str) -> None:
    pulled = _pull(fake, RegistryCredentials("ci", "hunter2"))
    assert pulled.archive == ARCHIVE
    assert pulled.manifest_digest == _digest(_Handler.manifest)
    storage = [auth for path, auth in _Handler.seen if path.startswith("/storage/")]
    assert storage == [None]
    registry = [auth for path, auth in _Handler.seen if path.startswith("/v2/edge/")]
    assert registry == [BASIC, BASIC]
    assert _pull(fake, RegistryCredentials("ci", "hunter2"), tag="gone") is None


def test_a_bearer_challenge_after_an_anonymous_ping_gets_a_token_for_the_scope(fake: str) -> None:
    _Handler.bearer = True
    pulled = _pull(fake)
    assert pulled.archive == ARCHIVE
    token_requests = [path for path, _ in _Handler.seen if path.startswith("/token")]
    assert token_requests == ["/token?scope=repository%3Aedge%3Apull&service=fake"]
    registry = [(path, auth) for path, auth in _Handler.seen if path.startswith("/v2/edge/")]
    assert registry == [
        ("/v2/edge/manifests/v1", None),
        ("/v2/edge/manifests/v1", "Bearer t0k3n"),
        (f"/v2/edge/blobs/{_digest(ARCHIVE)}", "Bearer t0k3n"),
    ]


def test_anonymous_and_wrong_credentials_name_the_reference_and_status(fake: str) -> None:
    with pytest.raises(RegistryError) as anonymous:
        _pull(fake)
    assert str(anonymous.value) == (
        f"oci://{fake}/edge:v1: registry {fake} asks for a user and password: HTTP 401 "
        "UNAUTHORIZED authentication (credentials: anonymous)"
    )
    with pytest.raises(RegistryError) as wrong:
        _pull(fake, RegistryCredentials("ci", "wrong", origin="the command line"))
    assert str(wrong.value).startswith(f"oci://{fake}/edge:v1: GET manifest v1: HTTP 401")
    assert "(credentials: the command line)" in str(wrong.value)
    assert "wrong" not in str(wrong.value).replace("(credentials", "")


def test_a_blob_that_does_not_match_its_descriptor_is_refused(fake: str) -> None:
    _Handler.blobs = {_digest(ARCHIVE): ARCHIVE + b"x"}
    with pytest.raises(RegistryError, match="more than the .* bytes expected"):
        _pull(fake, RegistryCredentials("ci", "hunter2"))
    _Handler.blobs = {_digest(ARCHIVE): ARCHIVE[:-1] + b"x"}
    with pytest.raises(RegistryError, match="does not match its descriptor"):
        _pull(fake, RegistryCredentials("ci", "hunter2"))


def test_a_manifest_without_a_bundle_layer_is_refused(fake: str) -> None:
    _Handler.manifest = json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(b""), "size": 0}
    ]}).encode()  # fmt: skip
    with pytest.raises(RegistryError, match=re.escape(f"has no bundle layer ({LAYER_TYPE})")):
        _pull(fake, RegistryCredentials("ci", "hunter2"))


def test_an_unreachable_registry(fake: str) -> None:
    with pytest.raises(RegistryError, match="oci://127.0.0.1:9/edge:v1: cannot reach registry"):
        _pull("127.0.0.1:9")


def test_an_image_index_is_followed_to_the_manifest_with_the_bundle_layer(fake: str) -> None:
    inner = _manifest(ARCHIVE)
    provenance = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    _Handler.by_digest = {_digest(inner): inner, _digest(provenance): provenance}
    _Handler.manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": MANIFEST_TYPE, "digest": _digest(provenance), "size": len(provenance),
             "platform": {"os": "unknown", "architecture": "unknown"}},
            {"mediaType": MANIFEST_TYPE, "digest": _digest(inner), "size": len(inner)},
        ],
    }).encode()  # fmt: skip
    pulled = _pull(fake, RegistryCredentials("ci", "hunter2"))
    assert pulled.archive == ARCHIVE
    assert pulled.manifest_digest == _digest(_Handler.manifest)
    fetched = [path for path, _ in _Handler.seen if path.startswith("/v2/edge/manifests/")]
    assert fetched == ["/v2/edge/manifests/v1", f"/v2/edge/manifests/{_digest(inner)}"]
