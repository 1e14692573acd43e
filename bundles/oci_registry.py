"""The OCI distribution API, client side: references, authentication, blobs and manifests.

Spoken over urllib3: blobs are checked with ``HEAD`` and uploaded in one ``POST`` + ``PUT``;
manifests are ``PUT`` under a tag; reads verify every digest and size and follow redirects to a
storage backend without the registry's credentials. HTTPS is the default; ``plain_http`` (or a
loopback registry that does not speak TLS, as Docker allows) uses HTTP. Authentication follows
:mod:`edgepolicy.bundles.registry_auth`. What a bundle looks like as an artifact is
:mod:`edgepolicy.bundles.oci_artifact`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from edgepolicy.bundles.registry_auth import (
    ANONYMOUS,
    Challenge,
    RegistryCredentials,
    basic_header,
    check_realm,
    parse_challenge,
    resolve_credentials,
    token_from_answer,
)

from edgepolicy.errors import RegistryError, UsageError

SCHEME = "oci://"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
_DOCKER_MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_BLOB_BYTES = 64 * 1024 * 1024  # the largest bundle the bundle service accepts too
_MAX_REDIRECTS = 5
_SHOWN_BODY = 300
_TIMEOUT = urllib3.Timeout(connect=5.0, read=60.0)
_CHUNK = 64 * 1024

_HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"
_HOST = re.compile(rf"^(?:{_HOSTNAME}|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class RegistryAccess:
    """How to reach registries: explicit credentials (else the Docker configuration's), HTTP."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    plain_http: bool = False
    ca_file: str | None = None

    def client(self, ref: OciReference, actions: str) -> RegistryClient:
        """Return a client of ``ref``'s repository for ``actions`` (``pull`` or ``pull,push``).

        Raises:
            UsageError: the credentials are incomplete or the Docker configuration is unusable.
        """
        credentials = resolve_credentials(ref.registry, self.username, self.password)
        return RegistryClient(
            ref, credentials, actions=actions, plain_http=self.plain_http, ca_file=self.ca_file
        )


@dataclass(frozen=True)
class OciReference:
    """``oci://REGISTRY/REPOSITORY:TAG`` (or ``@sha256:...``) split into its parts."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """Return what follows ``/manifests/`` in the API: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def resource(self) -> str:
        """Return the reference as OPA's bundle ``resource`` names it (without ``oci://``)."""
        suffix = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"{self.registry}/{self.repository}{suffix}"

    def __str__(self) -> str:
        return SCHEME + self.resource


def parse_reference(text: str) -> OciReference:
    """Parse ``oci://REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST]`` (the tag defaults to ``latest``).

    Raises:
        UsageError: the text is not such a reference, or carries credentials.
    """
    expected = "expected oci://REGISTRY/REPOSITORY:TAG"
    if not text.startswith(SCHEME):
        raise UsageError(f"{text!r}: {expected}")
    registry, slash, rest = text[len(SCHEME) :].partition("/")
    if "@" in registry:
        raise UsageError(
            f"oci://{registry.rpartition('@')[2]}/...: credentials do not belong in the reference "
            "(give a user name and password file, or use the Docker configuration)"
        )
    if not slash or not _HOST.match(registry):
        raise UsageError(f"{text!r}: {expected} (no registry host)")
    digest = tag = None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not DIGEST.match(digest):
            raise UsageError(f"{text!r}: digest must be sha256: and 64 lower-case hex digits")
    else:
        head, colon, last = rest.rpartition(":")
        if colon and "/" not in last:
            rest, tag = head, last
            if not _TAG.match(tag):
                raise UsageError(f"{text!r}: tag {tag!r} is not a valid OCI tag")
    if not _REPOSITORY.match(rest):
        raise UsageError(
            f"{text!r}: repository {rest!r} must be lower-case path components "
            "(letters, digits, and . _ - between them)"
        )
    return OciReference(registry, rest, tag or (None if digest else "latest"), digest)


def sha256_digest(data: bytes) -> str:
    """Return the OCI digest (``sha256:HEX``) of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _is_loopback(registry: str) -> bool:
    """Return whether ``registry`` (``host[:port]``) is localhost or a loopback address."""
    host = (
        registry[1 : registry.index("]")]
        if registry.startswith("[")
        else registry.partition(":")[0]
    )
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _detail(response: urllib3.BaseHTTPResponse) -> str:
    """Return the registry's error codes and messages (or the start of the body)."""
    body = response.data[: 64 * 1024]
    try:
        errors = json.loads(body)["errors"]
        parts = [f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors]
        text = "; ".join(part for part in parts if part)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return text[:_SHOWN_BODY] + ("..." if len(text) > _SHOWN_BODY else "")


class RegistryClient:
    """One repository of one registry, with the access ``actions`` (``pull`` or ``pull,push``).

    Use as a context manager; every method raises :class:`RegistryError` naming the reference,
    the request and the HTTP status when the registry refuses or cannot be reached.
    """

    def __init__(
        self,
        ref: OciReference,
        credentials: RegistryCredentials = ANONYMOUS,
        *,
        actions: str = "pull",
        plain_http: bool = False,
        ca_file: str | None = None,
    ) -> None:
        self.ref = ref
        self._credentials = credentials
        self._scope = f"repository:{ref.repository}:{actions}"
        self._plain_http = plain_http
        self._pool = urllib3.PoolManager(ca_certs=ca_file, retries=False, timeout=_TIMEOUT)
        self._base: str | None = None
        self._authorization: str | None = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool.clear()

    # -- transport -------------------------------------------------------------------------------

    def _fail(self, what: str, response: urllib3.BaseHTTPResponse) -> RegistryError:
        detail = _detail(response)
        hint = ""
        if response.status in (401, 403):
            hint = f" (credentials: {self._credentials.origin})"
        return RegistryError(
            f"{self.ref}: {what}: HTTP {response.status}{' ' + detail if detail else ''}{hint}"
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(
                method, url, body=body, headers=headers or {}, redirect=False,
                preload_content=not stream,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as error:
            raise RegistryError(
                f"{self.ref}: cannot reach registry {self.ref.registry}: {error}"
            ) from error

    def _connect(self) -> str:
        """Find the API base URL (``GET /v2/``) and authenticate if the registry asks for it."""
        if self._base is not None:
            return self._base
        base = f"{'http' if self._plain_http else 'https'}://{self.ref.registry}/v2/"
        try:
            response = self._pool.request("GET", base, redirect=False)
        except (urllib3.exceptions.SSLError, urllib3.exceptions.ProtocolError) as error:
            failed = RegistryError(
                f"{self.ref}: cannot reach registry {self.ref.registry} over "
                f"{base.split(':')[0].upper()}: {error}"
            )
            if self._plain_http or not _is_loopback(self.ref.registry):
                raise failed from error
            base = f"http://{self.ref.registry}/v2/"  # Docker's rule: loopback may be plain HTTP
            try:
                response = self._pool.request("GET", base, redirect=False)
            except urllib3.exceptions.HTTPError:
                raise failed from error
            if response.status not in (200, 401):  # a TLS registry answering plain HTTP
                raise failed from error
        except urllib3.exceptions.HTTPError as error:
            raise RegistryError(
                f"{self.ref}: cannot reach registry {self.ref.registry}: {error}"
            ) from error
        self._base = base
        if response.status == 401:
            self._authenticate(response)
        elif response.status != 200:
            raise self._fail(f"GET {base} (not an OCI registry API?)", response)
        return base

    def _challenge(self, response: urllib3.BaseHTTPResponse) -> Challenge:
        for value in response.headers.getlist("WWW-Authenticate"):
            challenge = parse_challenge(value)
            if challenge is not None and challenge.scheme in ("basic", "bearer"):
                return challenge
        raise self._fail("authentication required, but no Basic or Bearer challenge", response)

    def _authenticate(self, response: urllib3.BaseHTTPResponse) -> None:
        """Answer the registry's ``401`` challenge: Basic credentials, or a Bearer token."""
        challenge = self._challenge(response)
        if challenge.scheme == "basic":
            if not self._credentials.has_password:
                raise self._fail(
                    f"registry {self.ref.registry} asks for a user and password", response
                )
            self._authorization = basic_header(self._credentials)
            return
        self._authorization = "Bearer " + self._fetch_token(challenge)

    def _fetch_token(self, challenge: Challenge) -> str:
        """Get a token for this repository's scope from the challenge's realm."""
        realm = challenge.params.get("realm", "")
        assert self._base is not None
        try:
            check_realm(realm, plain_http=self._base.startswith("http:"))
        except RegistryError as error:
            raise RegistryError(f"{self.ref}: {error}") from error
        parts = urlsplit(realm)
        query: dict[str, str] = {"scope": self._scope}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        credentials = self._credentials
        if credentials.identity_token:
            form = {**query, "grant_type": "refresh_token", "client_id": "edgepolicy",
                    "refresh_token": credentials.identity_token}  # fmt: skip
            response = self._send(
                "POST", realm, body=urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
        else:
            headers = (
                {"Authorization": basic_header(credentials)} if credentials.has_password else {}
            )
            separator = "&" if parts.query else "?"
            response = self._send("GET", realm + separator + urlencode(query), headers=headers)
        if response.status != 200:
            raise self._fail(f"token service {realm} refused {self._scope}", response)
        return token_from_answer(response.data, realm)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """Send ``method`` to ``path`` (under ``/v2/NAME/``, or an absolute URL on the registry).

        A ``401`` is answered once (a token for the scope, or Basic credentials), then resent.
        """
        url = urljoin(self._connect(), path)
        for attempt in (1, 2):
            sent = dict(headers or {})
            if self._authorization and _same_origin(url, self._connect()):
                sent["Authorization"] = self._authorization
            response = self._send(method, url, body=body, headers=sent, stream=stream)
            if response.status != 401 or attempt == 2:
                return response
            response.drain_conn()
            self._authenticate(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _path(self, kind: str, reference: str) -> str:
        return f"{self.ref.repository}/{kind}/{reference}"

    # -- manifests and blobs ---------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        """Return whether the repository holds the blob ``digest`` (``HEAD``)."""
        response = self._request("HEAD", self._path("blobs", digest))
        if response.status == 200:
            return True
        if response.status == 404:
            return False
        raise self._fail(f"HEAD blob {digest}", response)

    def put_blob(self, data: bytes) -> str:
        """Upload ``data`` unless the repository already holds it; return its digest."""
        digest = sha256_digest(data)
        if self.blob_exists(digest):
            return digest
        started = self._request("POST", self._path("blobs", "uploads/"))
        location = started.headers.get("Location")
        if started.status != 202 or not location:
            raise self._fail("POST blob upload", started)
        url = urljoin(self._connect(), location)
        url += ("&" if urlsplit(url).query else "?") + urlencode({"digest": digest})
        done = self._request(
            "PUT", url, body=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )  # fmt: skip
        if done.status != 201:
            raise self._fail(f"PUT blob {digest} ({len(data)} bytes)", done)
        return digest

    def put_manifest(self, manifest: bytes, reference: str) -> str:
        """Store ``manifest`` under ``reference`` (a tag); return its digest."""
        digest = sha256_digest(manifest)
        response = self._request(
            "PUT", self._path("manifests", reference), body=manifest,
            headers={"Content-Type": MANIFEST_TYPE},
        )  # fmt: skip
        if response.status != 201:
            raise self._fail(f"PUT manifest {reference}", response)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RegistryError(
                f"{self.ref}: the registry stored the manifest as {answered}, expected {digest}"
            )
        return digest

    def get_manifest(self, reference: str) -> tuple[dict[str, Any], str, str] | None:
        """Return the manifest (or index) at ``reference``, its digest and media type.

        None when the repository or the reference does not exist (``404``).
        """
        accept = ", ".join((MANIFEST_TYPE, INDEX_TYPE, *_DOCKER_MANIFEST_TYPES))
        response = self._request(
            "GET", self._path("manifests", reference), headers={"Accept": accept}, stream=True
        )
        try:
            if response.status == 404:
                response.drain_conn()
                return None
            if response.status != 200:
                raise self._fail(f"GET manifest {reference}", response)
            body = _read_limited(response, MAX_MANIFEST_BYTES, f"{self.ref}: manifest {reference}")
        finally:
            response.release_conn()
        digest = sha256_digest(body)
        claimed = (
            reference if DIGEST.match(reference) else response.headers.get("Docker-Content-Digest")
        )
        if claimed and claimed != digest:
            raise RegistryError(
                f"{self.ref}: manifest {reference} has digest {digest}, expected {claimed}"
            )
        try:
            manifest = json.loads(body)
        except ValueError as error:
            raise RegistryError(f"{self.ref}: manifest {reference} is not JSON") from error
        if not isinstance(manifest, dict):
            raise RegistryError(f"{self.ref}: manifest {reference} is not a JSON object")
        media_type = manifest.get("mediaType") or response.headers.get("Content-Type", "")
        return manifest, digest, str(media_type).split(";")[0].strip()

    def get_blob(self, digest: str, size: int) -> bytes:
        """Return the blob ``digest`` of ``size`` bytes, checked against both.

        Redirects (to a storage backend) are followed without the registry's credentials.
        """
        if size > MAX_BLOB_BYTES:
            raise RegistryError(
                f"{self.ref}: blob {digest} has {size} bytes, over the {MAX_BLOB_BYTES} read"
            )
        response = self._request("GET", self._path("blobs", digest), stream=True)
        for _ in range(_MAX_REDIRECTS):
            if response.status not in (301, 302, 303, 307, 308):
                break
            location = response.headers.get("Location", "")
            response.drain_conn()
            response.release_conn()
            url = urljoin(response.geturl() or self._connect(), location)
            if _same_origin(url, self._connect()):
                response = self._request("GET", url, stream=True)
            else:
                response = self._send("GET", url, stream=True)
        try:
            if response.status != 200:
                raise self._fail(f"GET blob {digest}", response)
            data = _read_limited(response, size, f"{self.ref}: blob {digest}")
        finally:
            response.release_conn()
        if len(data) != size or sha256_digest(data) != digest:
            raise RegistryError(
                f"{self.ref}: blob {digest} does not match its descriptor "
                f"(got {len(data)} bytes, digest {sha256_digest(data)})"
            )
        return data


def _same_origin(url: str, base: str) -> bool:
    one, two = urlsplit(url), urlsplit(base)
    return (one.scheme, one.netloc) == (two.scheme, two.netloc)


def _read_limited(response: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
    """Read a streamed body of at most ``limit`` bytes (a longer one closes the connection)."""
    data = bytearray()
    for chunk in response.stream(_CHUNK):
        data += chunk
        if len(data) > limit:
            response.close()
            raise RegistryError(f"{what}: more than the {limit} bytes expected")
    return bytes(data)
