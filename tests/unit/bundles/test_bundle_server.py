"""The bundle service: ETags, 304, OPA long polling and authenticated uploads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from bundles.archive import tar_gz, write_atomically
from bundles.server import CONTENT_TYPE, BundleServer, make_server, parse_etags, parse_wait

TOKEN = "upload-token-for-tests"


def _bundle(revision: str) -> bytes:
    return tar_gz({".manifest": f'{{"revision":"{revision}"}}'.encode()})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[BundleServer, Path]]:
    directory = tmp_path / "bundles"
    directory.mkdir()
    write_atomically(directory / "edgepolicy.tar.gz", _bundle("one"))
    server = make_server(directory, "127.0.0.1", 0, TOKEN)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server, directory
    server.shutdown()
    server.store.close()
    server.server_close()
    thread.join()


def _get(url: str, **headers: str) -> urllib3.BaseHTTPResponse:
    return urllib3.request("GET", url, headers=headers, retries=False, timeout=10)


def test_get_returns_the_bundle_with_etag_and_opa_content_type(
    served: tuple[BundleServer, Path],
) -> None:
    server, _ = served
    response = _get(f"{server.url}/edgepolicy.tar.gz")
    assert response.status == 200
    assert response.data == _bundle("one")
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.headers["ETag"].startswith('"')


def test_if_none_match_gives_304(served: tuple[BundleServer, Path]) -> None:
    server, _ = served
    etag = _get(f"{server.url}/edgepolicy.tar.gz").headers["ETag"]
    response = _get(f"{server.url}/edgepolicy.tar.gz", **{"If-None-Match": f'"old", {etag}'})
    assert response.status == 304
    assert response.headers["ETag"] == etag
    assert response.data == b""


def test_if_none_match_star_gives_304_at_once(served: tuple[BundleServer, Path]) -> None:
    server, _ = served
    started = time.monotonic()
    response = _get(f"{server.url}/edgepolicy.tar.gz", **{"If-None-Match": "*", "Prefer": "wait=5"})
    assert response.status == 304
    assert response.headers["ETag"] == _get(f"{server.url}/edgepolicy.tar.gz").headers["ETag"]
    assert time.monotonic() - started < 4  # '*' matches any bundle, so a new one would too
    assert _get(f"{server.url}/missing.tar.gz", **{"If-None-Match": "*"}).status == 404


def test_long_poll_times_out_with_304(served: tuple[BundleServer, Path]) -> None:
    server, _ = served
    etag = _get(f"{server.url}/edgepolicy.tar.gz").headers["ETag"]
    started = time.monotonic()
    response = _get(
        f"{server.url}/edgepolicy.tar.gz",
        **{"If-None-Match": etag, "Prefer": "modes=snapshot,delta;wait=1"},
    )
    assert response.status == 304
    assert time.monotonic() - started >= 0.9


def test_long_poll_wakes_when_a_new_bundle_is_published(served: tuple[BundleServer, Path]) -> None:
    server, directory = served
    etag = _get(f"{server.url}/edgepolicy.tar.gz").headers["ETag"]
    publisher = threading.Timer(
        0.3, write_atomically, (directory / "edgepolicy.tar.gz", _bundle("two"))
    )
    publisher.start()
    started = time.monotonic()
    response = _get(
        f"{server.url}/edgepolicy.tar.gz", **{"If-None-Match": etag, "Prefer": "wait=20"}
    )
    elapsed = time.monotonic() - started
    publisher.join()
    assert response.status == 200
    assert response.data == _bundle("two")
    assert response.headers["ETag"] != etag
    assert elapsed < 5


@pytest.mark.parametrize("path", ["/missing.tar.gz", "/../etc/passwd", "/.hidden", "/"])
def test_unknown_hidden_or_escaping_paths_are_404(
    served: tuple[BundleServer, Path], path: str
) -> None:
    server, _ = served
    assert _get(server.url + path).status == 404


def test_upload_needs_the_token(served: tuple[BundleServer, Path]) -> None:
    server, directory = served
    url = f"{server.url}/team/edge.tar.gz"
    denied = urllib3.request(
        "PUT", url, body=_bundle("x"), headers={"Authorization": "Bearer wrong"}
    )
    assert denied.status == 401
    stored = urllib3.request(
        "PUT", url, body=_bundle("x"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert stored.status == 201
    assert (directory / "team" / "edge.tar.gz").read_bytes() == _bundle("x")
    assert _get(url).data == _bundle("x")


@pytest.mark.parametrize("path", ["/%2e%2e/escape.tar.gz", "/team/%2E%2E/%2E%2E/x.tar.gz", "/.x"])
def test_upload_to_a_hidden_or_escaping_path_is_refused(
    served: tuple[BundleServer, Path], path: str
) -> None:
    server, directory = served
    response = urllib3.request(
        "PUT", server.url + path, body=_bundle("x"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status == 400
    assert b"not a bundle path" in response.data
    assert sorted(p.name for p in directory.parent.rglob("*") if p.is_file()) == [
        "edgepolicy.tar.gz"
    ]


def test_upload_of_something_that_is_not_a_bundle_is_refused(
    served: tuple[BundleServer, Path],
) -> None:
    server, directory = served
    response = urllib3.request(
        "PUT",
        f"{server.url}/x.tar.gz",
        body=b"garbage",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status == 400
    assert not (directory / "x.tar.gz").exists()


def test_uploads_are_off_without_a_token(tmp_path: Path) -> None:
    server = make_server(tmp_path, "127.0.0.1", 0, None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        response = urllib3.request("PUT", f"{server.url}/x.tar.gz", body=_bundle("x"))
        assert response.status == 405
    finally:
        server.shutdown()
        server.store.close()
        server.server_close()
        thread.join()


def test_header_parsing() -> None:
    assert parse_etags('"a", W/"b" ,') == frozenset({'"a"', '"b"'})
    assert parse_etags(None) == frozenset()
    assert parse_wait("modes=snapshot,delta;wait=60") == 60
    assert parse_wait("wait=100000") == 300
    assert parse_wait("modes=snapshot") is None
