"""The bundle service, run as ``edgepolicy bundle serve``: ETags, 304, OPA long polling,
authenticated uploads, and what a client that is not OPA can send (raw HTTP, not normalised)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tarfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from bundleservice import Service, bundle_service, exchange, raw, responses
from edgepolicy.bundles.atomic_write import write_atomically
from edgepolicy.bundles.bundle_service import (
    CONTENT_TYPE,
    MAX_EXPANDED_BYTES,
    MAX_UPLOAD_BYTES,
    parse_etags,
    parse_wait,
)
from edgepolicy.bundles.hosting import RESERVED_CONNECTIONS

from edgepolicy.bundle_format import tar_gz

TOKEN = "upload-token-for-tests"
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()
SECRET = b"outside the served folder"


def _bundle(revision: str) -> bytes:
    return tar_gz({".manifest": f'{{"revision":"{revision}"}}'.encode()})


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the served one, beside files that must never be served or written."""
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[tuple[Service, Path]]:
    directory = root / "bundles"
    directory.mkdir()
    (root / "outside").mkdir()
    (root / "secret.tar.gz").write_bytes(SECRET)
    (root / "outside" / "secret.tar.gz").write_bytes(SECRET)
    write_atomically(directory / "edgepolicy.tar.gz", _bundle("one"))
    (directory / ".token").write_bytes(SECRET)  # a real hidden file
    (directory / "linked.tar.gz").symlink_to(root / "secret.tar.gz")
    (directory / "elsewhere").symlink_to(root / "outside", target_is_directory=True)
    (directory / "alias.tar.gz").symlink_to("edgepolicy.tar.gz")  # stays inside: served
    (directory / "..v1").mkdir()  # a ConfigMap volume as kubelet lays it out
    write_atomically(directory / "..v1" / "kube.tar.gz", _bundle("kube"))
    (directory / "..data").symlink_to("..v1")
    (directory / "kube.tar.gz").symlink_to("..data/kube.tar.gz")
    token = root / "token"
    token.write_text(TOKEN)
    with bundle_service(directory, token_file=token) as service:
        yield service, directory


def _get(url: str, **headers: str) -> urllib3.BaseHTTPResponse:
    return urllib3.request("GET", url, headers=headers, retries=False, timeout=10)


def _put(url: str, body: bytes, token: str = TOKEN) -> urllib3.BaseHTTPResponse:
    headers = {"Authorization": f"Bearer {token}"}
    return urllib3.request("PUT", url, body=body, headers=headers, retries=False, timeout=10)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_get_returns_the_bundle_with_etag_and_opa_content_type(
    served: tuple[Service, Path],
) -> None:
    service, _ = served
    response = _get(f"{service.url}/edgepolicy.tar.gz")
    assert response.status == 200
    assert response.data == _bundle("one")
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.headers["ETag"].startswith('"')
    head = urllib3.request("HEAD", f"{service.url}/edgepolicy.tar.gz", retries=False)
    assert head.status == 200 and head.data == b""
    assert head.headers["ETag"] == response.headers["ETag"]


def test_if_none_match_gives_304(served: tuple[Service, Path]) -> None:
    service, _ = served
    etag = _get(f"{service.url}/edgepolicy.tar.gz").headers["ETag"]
    response = _get(f"{service.url}/edgepolicy.tar.gz", **{"If-None-Match": f'"old", {etag}'})
    assert response.status == 304
    assert response.headers["ETag"] == etag
    assert response.data == b""


def test_if_none_match_star_gives_304_at_once(served: tuple[Service, Path]) -> None:
    service, _ = served
    started = time.monotonic()
    response = _get(
        f"{service.url}/edgepolicy.tar.gz", **{"If-None-Match": "*", "Prefer": "wait=5"}
    )
    assert response.status == 304
    assert response.headers["ETag"] == _get(f"{service.url}/edgepolicy.tar.gz").headers["ETag"]
    assert time.monotonic() - started < 4  # '*' matches any bundle, so a new one would too
    assert _get(f"{service.url}/missing.tar.gz", **{"If-None-Match": "*"}).status == 404


def test_long_poll_times_out_with_304(served: tuple[Service, Path]) -> None:
    service, _ = served
    etag = _get(f"{service.url}/edgepolicy.tar.gz").headers["ETag"]
    started = time.monotonic()
    response = _get(
        f"{service.url}/edgepolicy.tar.gz",
        **{"If-None-Match": etag, "Prefer": "modes=snapshot,delta;wait=1"},
    )
    assert response.status == 304
    assert time.monotonic() - started >= 0.9


def test_long_poll_wakes_when_a_new_bundle_is_published(served: tuple[Service, Path]) -> None:
    service, directory = served
    write_atomically(directory / "polled.tar.gz", _bundle("one"))
    etag = _get(f"{service.url}/polled.tar.gz").headers["ETag"]
    publisher = threading.Timer(
        0.3, write_atomically, (directory / "polled.tar.gz", _bundle("two"))
    )
    publisher.start()
    started = time.monotonic()
    response = _get(f"{service.url}/polled.tar.gz", **{"If-None-Match": etag, "Prefer": "wait=20"})
    elapsed = time.monotonic() - started
    publisher.join()
    assert response.status == 200
    assert response.data == _bundle("two")
    assert response.headers["ETag"] != etag
    assert elapsed < 5


def test_long_poll_wakes_when_a_bundle_is_uploaded(served: tuple[Service, Path]) -> None:
    service, _ = served
    url = f"{service.url}/uploaded/edgepolicy.tar.gz"
    assert _put(url, _bundle("one")).status == 201
    etag = _get(url).headers["ETag"]
    uploader = threading.Timer(0.3, _put, (url, _bundle("two")))
    uploader.start()
    response = _get(url, **{"If-None-Match": etag, "Prefer": "wait=20"})
    uploader.join()
    assert (response.status, response.data) == (200, _bundle("two"))


@pytest.mark.parametrize("path", ["/missing.tar.gz", "/../etc/passwd", "/.hidden", "/"])
def test_unknown_hidden_or_escaping_paths_are_404(served: tuple[Service, Path], path: str) -> None:
    service, _ = served
    assert _get(service.url + path).status == 404


@pytest.mark.parametrize(
    "path",
    [
        b"/../secret.tar.gz",
        b"/%2e%2e/secret.tar.gz",
        b"/%2E%2E/outside/secret.tar.gz",
        b"/x/%2e%2e/%2e%2e/secret.tar.gz",
        b"/.token",
        b"/%2etoken",
        b"/linked.tar.gz",  # a symbolic link to a file outside
        b"/elsewhere/secret.tar.gz",  # through a symbolic link to a folder outside
        b"/edgepolicy.tar.gz%00.txt",
        b"/..%2fsecret.tar.gz",
        b"/%2e%2e%5csecret.tar.gz",
    ],
)
def test_raw_requests_never_read_outside_the_folder_or_a_hidden_file(
    served: tuple[Service, Path], path: bytes
) -> None:
    service, _ = served
    received = raw(service, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert SECRET not in received
    assert responses(received) == [404], received[:200]


def test_an_absolute_path_names_a_file_inside_the_folder(
    served: tuple[Service, Path], root: Path
) -> None:
    service, directory = served
    absolute = b"/" + str(root / "outside" / "secret.tar.gz").encode()  # "//tmp/.../secret..."
    received = raw(service, b"GET " + absolute + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert SECRET not in received
    assert responses(received) == [404], received[:200]
    body = _bundle("x")
    head = b"PUT " + absolute.replace(b"secret", b"absolute") + b" HTTP/1.1\r\nHost: t\r\n" + AUTH
    stored = raw(service, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert responses(stored) == [201], stored[:300]
    assert not (root / "outside" / "absolute.tar.gz").exists()
    inside = directory / str(root / "outside" / "absolute.tar.gz").lstrip("/")
    assert inside.read_bytes() == body


def test_a_symbolic_link_that_stays_inside_is_served(served: tuple[Service, Path]) -> None:
    service, _ = served
    assert _get(f"{service.url}/alias.tar.gz").data == _bundle("one")
    assert _get(f"{service.url}/kube.tar.gz").data == _bundle("kube")  # through ..data
    for hidden in (b"/..data/kube.tar.gz", b"/..v1/kube.tar.gz", b"/%2e%2edata/kube.tar.gz"):
        assert responses(raw(service, b"GET " + hidden + b" HTTP/1.1\r\nHost: t\r\n\r\n")) == [404]


def test_a_nul_in_the_path_is_answered_and_the_connection_goes_on(
    served: tuple[Service, Path],
) -> None:
    service, _ = served
    with service.connect() as connection:
        bad = exchange(connection, b"PUT /a%00.tar.gz HTTP/1.1\r\nHost: t\r\n" + AUTH
                       + b"Content-Length: 4\r\n\r\nbody")  # fmt: skip
        assert responses(bad) == [400]
        assert b"not a bundle path: '/a\\x00.tar.gz'" in bad
        good = exchange(connection, b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert responses(good) == [200]
    raw_nul = raw(service, b"GET /edgepolicy.tar.gz\x00 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert responses(raw_nul) == [400] and raw_nul.endswith(b"<EOF>")
    assert "Traceback" not in service.log.read_text()


def test_upload_needs_the_token(served: tuple[Service, Path]) -> None:
    service, directory = served
    url = f"{service.url}/team/edge.tar.gz"
    assert _put(url, _bundle("x"), token="wrong").status == 401
    assert not (directory / "team" / "edge.tar.gz").exists()
    stored = _put(url, _bundle("x"))
    assert stored.status == 201
    assert (directory / "team" / "edge.tar.gz").read_bytes() == _bundle("x")
    assert _get(url).data == _bundle("x")


@pytest.mark.parametrize(
    "path",
    [
        b"/%2e%2e/escape.tar.gz",
        b"/../escape.tar.gz",
        b"/team/%2E%2E/%2E%2E/escape.tar.gz",
        b"/.x",
        b"/elsewhere/escape.tar.gz",  # through a symbolic link to a folder outside
        b"/linked.tar.gz",  # a symbolic link to a file outside
        b"/escape.tar.gz%00",
        b"/team%5cescape.tar.gz",  # a backslash, which a proxy may read as a separator
        b"/team\\escape.tar.gz",
        b"/",
    ],
)
def test_upload_to_a_hidden_or_escaping_path_is_refused(
    served: tuple[Service, Path], root: Path, path: bytes
) -> None:
    service, _ = served
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    body = _bundle("x")
    request = b"PUT " + path + b" HTTP/1.1\r\nHost: t\r\n" + AUTH
    received = raw(service, request + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert responses(received) == [400], received[:300]
    assert b"not a bundle path" in received
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("swapped", ["top", "top/inner"])
def test_a_folder_swapped_for_a_link_out_after_the_check_is_not_written_through(
    served: tuple[Service, Path], root: Path, swapped: str
) -> None:
    service, directory = served
    team = f"swap-{swapped.replace('/', '-')}"
    (directory / team / "top" / "inner").mkdir(parents=True)
    body = _bundle("x")
    with service.connect() as connection:
        # The service checks the path, then asks for the body with 100 Continue: the check
        # has happened when the answer comes. Only then does a folder on the way become a
        # symbolic link to a folder outside.
        continued = exchange(connection, b"PUT /" + team.encode() + b"/top/inner/swap.tar.gz"
                             b" HTTP/1.1\r\nHost: t\r\n" + AUTH + b"Expect: 100-continue\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body))  # fmt: skip
        assert continued.startswith(b"HTTP/1.1 100 "), continued
        (directory / team / swapped).rename(directory / team / "moved")
        (directory / team / swapped).symlink_to(root / "outside", target_is_directory=True)
        received = exchange(connection, body)
    assert not list((root / "outside").rglob("swap.tar.gz"))
    assert responses(received) == [400], received[:300]
    assert "Traceback" not in service.log.read_text()


def _expanding_bundle(size: int) -> bytes:
    """A bundle with a .manifest and a file of ``size`` zero bytes, compressed as it is made."""
    header = tarfile.TarInfo("zeros.json")
    header.size = size
    manifest = tarfile.TarInfo(".manifest")
    manifest.size = 2
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    parts = [compressor.compress(manifest.tobuf() + b"{}".ljust(512, b"\0") + header.tobuf())]
    zeros = bytes(1024 * 1024)
    for _ in range(size // len(zeros)):
        parts.append(compressor.compress(zeros))
    parts.append(compressor.compress(bytes(1024 * 10)) + compressor.flush())  # end of archive
    return b"".join(parts)


def test_an_upload_that_expands_past_the_bound_is_refused(served: tuple[Service, Path]) -> None:
    service, directory = served
    body = _expanding_bundle(MAX_EXPANDED_BYTES + 1024 * 1024)
    assert len(body) < MAX_UPLOAD_BYTES // 64  # small on the wire
    request = b"PUT /bomb.tar.gz HTTP/1.1\r\nHost: t\r\n" + AUTH
    received = raw(service, request + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert responses(received) == [400], received[:300]
    assert b"expands to over" in received
    assert not (directory / "bomb.tar.gz").exists()


def test_an_upload_with_a_bad_gzip_checksum_is_refused(served: tuple[Service, Path]) -> None:
    service, directory = served
    body = bytearray(_bundle("r1"))
    body[-8] ^= 0xFF  # the gzip trailer's CRC-32: the archive inside still reads
    response = _put(f"{service.url}/crc.tar.gz", bytes(body))
    assert response.status == 400, response.data
    assert b"CRC check failed" in response.data
    assert not (directory / "crc.tar.gz").exists()


def test_a_refused_upload_quotes_its_path_cut_short(served: tuple[Service, Path]) -> None:
    service, _ = served
    path = b"/" + b"a/" * 1500 + b"x.tar.gz"
    request = b"PUT " + path + b" HTTP/1.1\r\nHost: t\r\n" + AUTH + b"Content-Length: 7\r\n\r\n"
    received = raw(service, request + b"garbage")
    assert responses(received) == [400], received[:300]
    answer = received.split(b"\r\n\r\n", 1)[1]
    assert b"not a gzipped tar bundle" in answer and len(answer) < 300, answer[:400]


def test_upload_of_something_that_is_not_a_bundle_is_refused(
    served: tuple[Service, Path],
) -> None:
    service, directory = served
    response = _put(f"{service.url}/x.tar.gz", b"garbage")
    assert response.status == 400
    assert not (directory / "x.tar.gz").exists()


SMUGGLED = b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"", 401),  # no token
        (AUTH, 400),  # not a bundle
        (b"Authorization: Bearer wrong\r\n", 401),
    ],
)
def test_a_body_is_never_read_as_the_next_request(
    served: tuple[Service, Path], headers: bytes, status: int
) -> None:
    service, _ = served
    request = b"PUT /x.tar.gz HTTP/1.1\r\nHost: t\r\n" + headers
    received = raw(service, request + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
    assert responses(received) == [status], received
    if status == 401:  # answered before the body was read: said, so a proxy does not reuse it
        assert b"\r\nconnection: close\r\n" in received.lower()


def test_a_body_sent_slowly_is_never_read_as_the_next_request(
    served: tuple[Service, Path],
) -> None:
    service, _ = served
    with service.connect() as connection:
        head = b"PUT /x.tar.gz HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
        first = exchange(connection, head)  # answered 401 before the body comes
        try:
            later = exchange(connection, SMUGGLED)
        except OSError:  # the service closed the connection (reset on our late write)
            later = b"<EOF>"
    assert responses(first) == [401]
    assert responses(later) == [], later


@pytest.mark.parametrize(
    ("request_line", "headers", "status"),
    [
        (b"PUT /x.tar.gz", b"", 401),
        (b"DELETE /x.tar.gz", b"", 405),
        (b"PUT /.x.tar.gz", AUTH, 400),
        (b"GET /missing.tar.gz", b"", 404),
    ],
)
def test_a_body_held_back_for_100_continue_is_never_read_as_the_next_request(
    served: tuple[Service, Path], request_line: bytes, headers: bytes, status: int
) -> None:
    service, _ = served
    head = (request_line + b" HTTP/1.1\r\nHost: t\r\n" + headers
            + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED))  # fmt: skip
    with service.connect() as connection:
        first = exchange(connection, head)  # answered without 100 Continue
        try:
            later = exchange(connection, SMUGGLED)  # the client sends its body anyway
        except OSError:  # the service closed the connection (reset on our late write)
            later = b"<EOF>"
    assert responses(first) == [status], first
    assert b"\r\nconnection: close\r\n" in first.lower()  # said before it is done
    assert responses(later) == [], later


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding : chunked\r\n",
        b"Content-Length: 0x10\r\n",
        b"Content-Length: 1_0\r\n",
        b"Content-Length: 5, 5\r\n",
    ],
)
def test_ambiguous_framing_is_refused_and_the_connection_closed(
    served: tuple[Service, Path], framing: bytes
) -> None:
    service, _ = served
    request = b"PUT /x.tar.gz HTTP/1.1\r\nHost: t\r\n" + AUTH + framing + b"\r\n0\r\n\r\n"
    received = raw(service, request + SMUGGLED)
    assert responses(received) == [400], received[:300]
    assert received.endswith(b"<EOF>")


@pytest.mark.parametrize(
    ("length", "status"),
    [
        (b"-1", 400),
        (b"abc", 400),
        (b"+5", 400),
        (b"1e3", 400),
        (b"99999999999999999999", 413),
        (b"9" * 4000, 413),
        (b"9" * 5000, 431),  # a header line over 4 kB
        (b"%d" % (64 * 1024 * 1024 + 1), 413),
    ],
)
def test_a_bad_or_too_large_content_length_is_refused_and_the_connection_closed(
    served: tuple[Service, Path], length: bytes, status: int
) -> None:
    service, directory = served
    request = b"PUT /big.tar.gz HTTP/1.1\r\nHost: t\r\n" + AUTH + b"Content-Length: " + length
    received = raw(service, request + b"\r\n\r\n" + b"x" * 1000)
    assert responses(received) == [status], received[:300]
    # Said (the client does not send the body on the same connection) and done.
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert received.endswith(b"<EOF>")
    assert not (directory / "big.tar.gz").exists()


def test_a_repeated_content_length_is_refused(served: tuple[Service, Path]) -> None:
    service, _ = served
    request = b"PUT /x.tar.gz HTTP/1.1\r\nHost: t\r\n" + AUTH
    received = raw(
        service, request + b"Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc" + SMUGGLED
    )
    assert responses(received) == [400]
    assert received.endswith(b"<EOF>")


def test_a_chunked_body_over_the_cap_is_refused(served: tuple[Service, Path]) -> None:
    service, directory = served
    chunk = b"x" * (1024 * 1024)
    with service.connect(timeout=30) as connection:
        connection.sendall(b"PUT /big.tar.gz HTTP/1.1\r\nHost: t\r\n" + AUTH
                           + b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        received = b""
        try:
            for _ in range(70):
                connection.sendall(b"100000\r\n" + chunk + b"\r\n")
        except OSError:  # closed after the answer
            pass
        connection.settimeout(10)
        try:
            while chunk_in := connection.recv(65536):
                received += chunk_in
        except OSError:
            pass
    assert responses(received) == [413], received[:300]
    assert not (directory / "big.tar.gz").exists()


def test_uploads_are_off_without_a_token(tmp_path: Path) -> None:
    with bundle_service(tmp_path) as service:
        response = urllib3.request("PUT", f"{service.url}/x.tar.gz", body=_bundle("x"))
        assert response.status == 405
        received = raw(service, b"PUT /x.tar.gz HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                       % len(SMUGGLED) + SMUGGLED)  # fmt: skip
        assert responses(received) == [405]
        assert responses(raw(service, b"DELETE /x HTTP/1.1\r\nHost: t\r\n\r\n")) == [405]


def test_connections_over_the_cap_get_503_with_retry_after(tmp_path: Path) -> None:
    directory = tmp_path / "bundles"
    directory.mkdir()
    write_atomically(directory / "edgepolicy.tar.gz", _bundle("one"))
    with bundle_service(directory, "--max-connections", "3") as service:
        time.sleep(0.5)  # the connection that saw it start is closed (counted until then)
        held = [service.connect() for _ in range(3)]
        try:
            time.sleep(0.5)  # all three accepted
            refused = raw(service, b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert responses(refused) == [503]
            assert b"Retry-After: 5\r\n" in refused and refused.endswith(b"<EOF>")
            # the held ones are served
            served_again = exchange(held[0], b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert responses(served_again) == [200]
        finally:
            for connection in held:
                connection.close()
        time.sleep(0.5)
        answer = raw(service, b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert responses(answer) == [200]


def _long_poll(service: Service, etag: str) -> socket.socket:
    connection = service.connect()
    connection.sendall(b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHost: t\r\nIf-None-Match: "
                       + etag.encode() + b"\r\nPrefer: wait=60\r\n\r\n")  # fmt: skip
    return connection


def test_long_polls_over_the_cap_get_503_and_leaving_clients_free_their_place(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "bundles"
    directory.mkdir()
    write_atomically(directory / "edgepolicy.tar.gz", _bundle("one"))
    cap = 2
    flags = ("--max-connections", str(cap + RESERVED_CONNECTIONS))
    with bundle_service(directory, *flags) as service:
        etag = _get(f"{service.url}/edgepolicy.tar.gz").headers["ETag"]
        for _round in range(3):  # the places of clients that left are given back
            waiting = [_long_poll(service, etag) for _ in range(cap)]
            time.sleep(0.5)
            over = _get(
                f"{service.url}/edgepolicy.tar.gz", **{"If-None-Match": etag, "Prefer": "wait=60"}
            )
            assert over.status == 503
            assert over.headers["Retry-After"] == "5"
            assert _get(f"{service.url}/edgepolicy.tar.gz").status == 200  # no wait: served
            for connection in waiting:
                connection.close()
            time.sleep(0.5)
        woken = [_long_poll(service, etag) for _ in range(cap)]
        write_atomically(directory / "edgepolicy.tar.gz", _bundle("two"))
        for connection in woken:
            assert responses(exchange(connection, b"")) == [200]
            connection.close()


def test_a_connection_that_sends_no_request_is_closed(tmp_path: Path) -> None:
    with bundle_service(tmp_path) as service, service.connect(timeout=30) as connection:
        connection.sendall(b"GET /edgepolicy.tar.gz HTTP/1.1\r\nHo")  # and then nothing
        started = time.monotonic()
        connection.settimeout(30)
        assert connection.recv(100) == b""
        assert 8 < time.monotonic() - started < 20


def test_header_parsing() -> None:
    assert parse_etags('"a", W/"b" ,') == frozenset({'"a"', '"b"'})
    assert parse_etags(None) == frozenset()
    assert parse_wait("modes=snapshot,delta;wait=60") == 60
    assert parse_wait("wait=100000") == 300
    assert parse_wait("wait=" + "9" * 5000) == 300
    assert parse_wait("modes=snapshot") is None


def test_stopping_answers_held_long_polls_304(tmp_path: Path) -> None:
    directory = tmp_path / "bundles"
    directory.mkdir()
    write_atomically(directory / "edgepolicy.tar.gz", _bundle("one"))
    with bundle_service(directory) as service:
        etag = _get(f"{service.url}/edgepolicy.tar.gz").headers["ETag"]
        with _long_poll(service, etag) as held:
            time.sleep(0.5)
            service.process.terminate()
            answer = exchange(held, b"")
            assert service.process.wait(10) == 0
    assert responses(answer) == [304]
    assert b"Connection: close\r\n" in answer


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_listen_backlog_is_2048(tmp_path: Path) -> None:
    with bundle_service(tmp_path) as service:
        listening = subprocess.run(
            ["ss", "-ltnH", f"sport = :{service.port}"], capture_output=True, text=True, check=True
        ).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(listening[2]) == min(2048, somaxconn)  # Send-Q of a listener: its backlog


def test_no_request_above_left_a_stack_trace(served: tuple[Service, Path]) -> None:
    service, _ = served  # runs last in this file: the service has seen every odd request above
    log = service.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]
