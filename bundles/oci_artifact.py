"""A bundle as an OCI artifact, in the form OPA's OCI bundle downloader reads.

An artifact is one image manifest (``application/vnd.oci.image.manifest.v1+json``) whose config
is the empty JSON object (``application/vnd.oci.image.config.v1+json``) and whose one layer is the
bundle archive itself (``application/vnd.oci.image.layer.v1.tar+gzip``, titled with the bundle's
file name): OPA (``services.X.type: oci``) pulls the manifest by tag and activates the first layer
of that media type (through an image index, if there is one). The manifest records the bundle's
revision (``org.opencontainers.image.revision``) and, when the bundle records it, the commit time
(``org.opencontainers.image.created``), so publishing the same bundle twice gives the same
manifest digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edgepolicy.bundles.layout import TIME_FORMAT
from edgepolicy.bundles.oci_registry import DIGEST, MANIFEST_TYPE, RegistryClient, sha256_digest
from edgepolicy.bundles.rollback import read_revision

from edgepolicy.errors import RegistryError, RollbackError, UsageError

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
TITLE = "org.opencontainers.image.title"
REVISION = "org.opencontainers.image.revision"
CREATED = "org.opencontainers.image.created"
EMPTY_CONFIG = b"{}"
_MAX_INDEX_DEPTH = 4  # nested image indexes followed, as OPA does


def bundle_manifest(archive: bytes, *, title: str, source: str = "bundle") -> bytes:
    """Return the image manifest that carries ``archive`` (layer titled ``title``).

    Raises:
        BundleError: the archive is not a bundle with a ``.manifest`` revision.
    """
    revision = read_revision(archive, source)
    annotations = {REVISION: revision.revision}
    when = revision.commit_time if revision.commit_time is not None else revision.author_time
    if when is not None:
        annotations[CREATED] = datetime.fromtimestamp(when, UTC).strftime(TIME_FORMAT)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": sha256_digest(EMPTY_CONFIG), "size": 2},
        "layers": [
            {
                "mediaType": LAYER_TYPE,
                "digest": sha256_digest(archive),
                "size": len(archive),
                "annotations": {TITLE: title},
            }
        ],
        "annotations": annotations,
    }
    return json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()


def _bundle_layer(
    client: RegistryClient, manifest: dict[str, Any], digest: str
) -> dict[str, Any] | None:
    """Return the first ``tar+gzip`` layer of ``manifest`` (through an index), None if none."""
    seen = {digest}
    for _ in range(_MAX_INDEX_DEPTH + 1):
        layers = manifest.get("layers")
        if isinstance(layers, list) and layers:
            for layer in layers:
                if isinstance(layer, dict) and layer.get("mediaType") == LAYER_TYPE:
                    return layer
            break
        entries = [
            entry for entry in manifest.get("manifests") or []
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str)
            and entry["digest"] not in seen
            and (entry.get("platform") or {}).get("os") != "unknown"
        ]  # fmt: skip
        if not entries:
            break
        child = client.get_manifest(entries[0]["digest"])
        if child is None:
            raise RegistryError(f"{client.ref}: index entry {entries[0]['digest']} is missing")
        manifest, digest, _ = child
        seen.add(digest)
    return None


def _checked_descriptor(client: RegistryClient, layer: dict[str, Any]) -> tuple[str, int]:
    digest, size = layer.get("digest"), layer.get("size")
    if not isinstance(digest, str) or not DIGEST.match(digest):
        raise RegistryError(f"{client.ref}: bundle layer digest {digest!r} is not sha256:HEX")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{client.ref}: bundle layer size {size!r} is not a byte count")
    return digest, size


@dataclass(frozen=True)
class PulledBundle:
    """A bundle archive pulled from a registry and the manifest digest it was found under."""

    archive: bytes
    manifest_digest: str


def _locate(client: RegistryClient) -> tuple[str, dict[str, Any] | None] | None:
    """Return the manifest digest at the client's reference and its bundle layer (None: none).

    None when the reference does not exist.
    """
    found = client.get_manifest(client.ref.reference)
    if found is None:
        return None
    manifest, digest, _ = found
    return digest, _bundle_layer(client, manifest, digest)


def pull_bundle(client: RegistryClient) -> PulledBundle | None:
    """Return the bundle the client's reference names, or None when there is none (``404``).

    Raises:
        RegistryError: the registry failed, or the artifact has no (intact) bundle layer.
    """
    located = _locate(client)
    if located is None:
        return None
    digest, layer = located
    if layer is None:
        raise RegistryError(f"{client.ref}: {digest} has no bundle layer ({LAYER_TYPE})")
    return PulledBundle(client.get_blob(*_checked_descriptor(client, layer)), digest)


def current_bundle(client: RegistryClient) -> bytes | None:
    """Return the bundle the tag holds now (for the rollback check), or None when it holds none.

    Raises:
        RollbackError: the tag holds an artifact without a bundle layer (nothing shows the new
            bundle is not older, as for a published file that is not a bundle).
        RegistryError: the registry failed, or the bundle layer does not match its descriptor.
    """
    located = _locate(client)
    if located is None:
        return None
    digest, layer = located
    if layer is None:
        raise RollbackError(
            f"{client.ref} holds {digest}, an artifact without a bundle layer ({LAYER_TYPE}); "
            "refusing to replace it; allow the rollback explicitly"
        )
    return client.get_blob(*_checked_descriptor(client, layer))


def push_bundle(client: RegistryClient, archive: bytes, *, title: str, source: str) -> str:
    """Push ``archive`` under the client's tag; return the manifest digest.

    Raises:
        BundleError: the archive is not a bundle with a revision.
        RegistryError: the registry refused or failed.
    """
    if client.ref.tag is None:
        raise UsageError(f"{client.ref}: publish to a tag, not a digest")
    manifest = bundle_manifest(archive, title=title, source=source)
    client.put_blob(EMPTY_CONFIG)
    client.put_blob(archive)
    return client.put_manifest(manifest, client.ref.tag)
