"""The OPA bundle format, read and written in one place.

Writing: reproducible ``.tar.gz`` archives (the same files always give the same bytes: regular
files only, sorted by name, fixed modification time, mode 0644, uid/gid 0, no owner names, and a
gzip header with no file name and a zero timestamp). Reading: a bundle's files, its ``.manifest``
(parsed here for every reader: its roots, the revision :mod:`edgepolicy.bundles.rollback` compares),
whether it is signed and by which key ids (``.signatures.json``), and whether given data would
collide with the roots it owns. The reserved file names are defined here only. Cryptographic
verification stays OPA's.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepolicy.errors import BundleError

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
_GZIP_LEVEL = 9
_DRAIN_BYTES = 65536


def tar_gz(files: Mapping[str, bytes], *, mtime: int = 0) -> bytes:
    """Return a reproducible gzipped tar archive holding ``files`` (bundle path → content)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    out = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=out, mtime=0, compresslevel=_GZIP_LEVEL
    ) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


class _Expanded(Exception):
    """The archive expands past its bound."""


class _BoundedGzip(gzip.GzipFile):
    """A gzip stream that refuses to expand past ``bound`` bytes, before it holds them."""

    bound = 0

    def read(self, size: int | None = -1) -> bytes:
        room = self.bound - self.tell()
        if size is None or size < 0 or size > room:
            data = super().read(room + 1)
            if len(data) > room:
                raise _Expanded
            return data
        return super().read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET and offset > self.bound:
            raise _Expanded
        return super().seek(offset, whence)


def read_tar_gz(data: bytes, *, source: str, bound: int | None = None) -> dict[str, bytes]:
    """Return the regular files of the bundle archive ``data`` (path without leading ``/``).

    With ``bound``, an archive that expands to more than ``bound`` bytes (its tar stream,
    headers included) is refused before that much is held.

    Raises:
        BundleError: ``data`` is not a readable gzipped tar archive (its gzip checksum
            included, as OPA checks it), or expands past ``bound`` (``source`` names it).
    """
    files: dict[str, bytes] = {}
    stream = _BoundedGzip(fileobj=io.BytesIO(data), mode="rb")
    stream.bound = bound if bound is not None else 2**63
    try:
        with stream, tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name.lstrip("/")] = extracted.read()
            while stream.read(_DRAIN_BYTES):  # to the gzip trailer: its CRC and length checked
                pass
    except _Expanded:
        raise BundleError(f"{source}: bundle expands to over {bound} bytes") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise BundleError(f"{source}: not a gzipped tar bundle: {error}") from error
    return files


def is_signed(bundle: Path) -> bool:
    """Tell whether a bundle tarball carries a ``.signatures.json``.

    Raises:
        BundleError: the bundle cannot be read.
    """
    return _member_from_tarball(bundle, SIGNATURES) is not None


def _tar_problem(error: OSError | EOFError | zlib.error | tarfile.TarError) -> str:
    """One line saying why a bundle tarball could not be read."""
    if isinstance(error, tarfile.ReadError):
        return "not a tar archive (expected a .tar.gz bundle, as `opa build` writes)"
    if isinstance(error, EOFError | zlib.error):
        return f"truncated or corrupt compressed data ({error})"
    return " ".join(str(error).split())


def check_signature_key_ids(bundle: Path, key_id: str) -> None:
    """Refuse a bundle whose signatures name another key id than ``key_id``.

    A signature names its key in the JWT header's ``kid``, else in the payload's ``keyid``
    (``opa build --claims-file`` writes only the latter); one naming none is left to OPA,
    which then verifies it with the configured key. OPA does not insist that a named id match
    the configured one, so this check does. The cryptographic verification stays OPA's.

    Raises:
        BundleError: the bundle or its ``.signatures.json`` cannot be read, or a signature names
            another key id.
    """
    for named in _signature_key_ids(bundle):
        if named is not None and named != key_id:
            raise BundleError(
                f"bundle {bundle} is signed with key id {named!r}, but the verification key's "
                f"id is {key_id!r}"
            )


def _signature_key_ids(bundle: Path) -> list[str | None]:
    """The key id each signature in a bundle's ``.signatures.json`` names (None: none)."""
    raw = _member_from_tarball(bundle, SIGNATURES)
    if raw is None:
        return []
    try:
        document = json.loads(raw)
        tokens = document.get("signatures", []) if isinstance(document, dict) else None
        if not isinstance(tokens, list):
            raise ValueError('expected {"signatures": [JWT, ...]}')
        return [_jwt_key_id(token) for token in tokens]
    except ValueError as error:  # also bad JSON, UTF-8 or base64
        message = f"{bundle}: cannot read the bundle's .signatures.json: {error}"
        raise BundleError(message) from error


def _jwt_key_id(token: object) -> str | None:
    """The ``kid`` of a compact JWS's header, else the ``keyid`` of its payload (unverified)."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise ValueError("a signature is not a compact JWT")
    header, payload = (_jwt_part(part) for part in token.split(".")[:2])
    for named in (header.get("kid"), payload.get("keyid")):
        if isinstance(named, str) and named:
            return named
    return None


def _jwt_part(part: str) -> dict[str, Any]:
    decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(decoded, dict):
        raise ValueError("a JWT header or payload is not a JSON object")
    return decoded


def parse_manifest(raw: bytes | None, *, source: str) -> dict[str, Any] | None:
    """Return the ``.manifest`` whose content is ``raw`` as a JSON object, or None when the
    bundle has none (``raw`` None or empty).

    Raises:
        BundleError: it is not JSON, or not a JSON object (``source`` names the bundle).
    """
    if not raw:
        return None
    try:
        manifest = json.loads(raw)
    except ValueError as error:
        raise BundleError(f"{source}: cannot read the bundle's .manifest: {error}") from error
    if not isinstance(manifest, dict):
        raise BundleError(f"{source}: the bundle's .manifest is not a JSON object")
    return manifest


def bundle_roots(bundle: Path) -> list[str]:
    """Return the roots a bundle tarball declares in its ``.manifest``.

    A bundle without a manifest or without ``roots`` owns the whole data tree (``[""]``).

    Raises:
        BundleError: the bundle or its manifest cannot be read.
    """
    manifest = parse_manifest(_member_from_tarball(bundle, MANIFEST), source=str(bundle)) or {}
    roots = manifest.get("roots", [""])
    if not isinstance(roots, list) or not all(isinstance(root, str) for root in roots):
        raise BundleError(f"{bundle}: .manifest roots must be a list of strings, got {roots!r}")
    return roots


def _member_from_tarball(bundle: Path, name: str) -> bytes | None:
    """The content of the bundle's top-level entry ``name`` (None when absent, empty when it
    is not a regular file).

    Raises:
        BundleError: the bundle cannot be read.
    """
    try:
        with tarfile.open(bundle, "r:*") as archive:
            for member in archive:
                if member.name.removeprefix("./").lstrip("/") == name:
                    extracted = archive.extractfile(member) if member.isfile() else None
                    return extracted.read() if extracted is not None else b""
    except (OSError, EOFError, zlib.error, tarfile.TarError) as error:
        raise BundleError(f"{bundle}: cannot read the bundle: {_tar_problem(error)}") from error
    return None


def check_data_outside_roots(data: Mapping[str, Any], roots: Sequence[str], bundle: Path) -> None:
    """Refuse data that a bundle's roots own: OPA would drop it without a word.

    Raises:
        BundleError: some value of ``data`` lies at or under one of ``roots``, or replaces an
            object above one.
    """
    for root in roots:
        node: Any = data
        walked: list[str] = []
        for segment in (segment for segment in root.split("/") if segment):
            if not isinstance(node, Mapping) or segment not in node:
                break
            node = node[segment]
            walked.append(segment)
        else:
            if node not in (None, {}):
                raise BundleError(_overlap_message(walked, root, roots, bundle))
            continue
        if not isinstance(node, Mapping):
            raise BundleError(_overlap_message(walked, root, roots, bundle))


def _overlap_message(walked: list[str], root: str, roots: Sequence[str], bundle: Path) -> str:
    place = ".".join(["data", *walked])
    owned = ".".join(["data", *(segment for segment in root.split("/") if segment)])
    return (
        f"the data sets {place}, but bundle {bundle} owns {owned} (its .manifest roots: "
        f"{', '.join(repr(r) for r in roots)}) and OPA would ignore the data there; "
        "put these values into the bundle instead"
    )
