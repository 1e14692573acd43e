"""The OCI artifact of a bundle: the manifest OPA's OCI downloader reads."""

from __future__ import annotations

import hashlib
import json

import pytest
from edgepolicy.bundles.layout import manifest_json
from edgepolicy.bundles.oci_artifact import CONFIG_TYPE, LAYER_TYPE, bundle_manifest
from edgepolicy.bundles.oci_registry import MANIFEST_TYPE

from edgepolicy.bundle_format import tar_gz
from edgepolicy.errors import BundleError


def test_the_manifest_is_what_opa_reads_and_the_same_for_the_same_bundle() -> None:
    when = 1_767_225_600
    archive = tar_gz({".manifest": manifest_json("c0ffee", when - 60, "local", commit_time=when)})
    raw = bundle_manifest(archive, title="edgepolicy.tar.gz")
    assert raw == bundle_manifest(archive, title="edgepolicy.tar.gz")
    manifest = json.loads(raw)
    assert manifest == {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": CONFIG_TYPE,
            "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
            "size": 2,
        },
        "layers": [
            {
                "mediaType": LAYER_TYPE,
                "digest": "sha256:" + hashlib.sha256(archive).hexdigest(),
                "size": len(archive),
                "annotations": {"org.opencontainers.image.title": "edgepolicy.tar.gz"},
            }
        ],
        "annotations": {
            "org.opencontainers.image.revision": "c0ffee",
            "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        },
    }
    assert LAYER_TYPE == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert CONFIG_TYPE == "application/vnd.oci.image.config.v1+json"


def test_only_bundles_get_a_manifest() -> None:
    untimed = json.loads(bundle_manifest(tar_gz({".manifest": b'{"revision":"r"}'}), title="t"))
    assert untimed["annotations"] == {"org.opencontainers.image.revision": "r"}
    with pytest.raises(BundleError, match="the.tar.gz: bundle has no .manifest with a revision"):
        bundle_manifest(tar_gz({"x.rego": b"package x"}), title="t", source="the.tar.gz")
