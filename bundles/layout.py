"""Which files go into a bundle, and under which paths.

A bundle holds the shipped Rego library at its own relative paths (its ``data.json`` files land
where the library expects them), the policy repository's ``.rego`` files under ``repo/``, the
repository's policy objects in ``edgepolicy/policies/data.json`` (``data.edgepolicy.policies``,
see docs/decision-contract.md), its settings file (if any) in ``edgepolicy/settings/data.json``
and a ``.manifest`` whose roots are ``["edgepolicy"]``.
The library's files are its runtime files (:func:`edgepolicy.library.runtime_files`, the same
that ``check`` and ``serve`` load); test files (``*_test.rego``) are left out of the repository's
Rego too: they are for ``opa test``, not for enforcement.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgepolicy.bundle_format import MANIFEST, SIGNATURES
from edgepolicy.errors import BundleError
from edgepolicy.library import TEST_MODULE_SUFFIX, runtime_files

ROOTS = ("edgepolicy",)
POLICIES_DATA = "edgepolicy/policies/data.json"
SETTINGS_DATA = "edgepolicy/settings/data.json"
REPO_PREFIX = "repo/"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_RESERVED = frozenset({MANIFEST, SIGNATURES, POLICIES_DATA, SETTINGS_DATA})


def is_rego(path: str) -> bool:
    """Return whether ``path`` is a Rego module that belongs in a bundle (tests excluded)."""
    return path.endswith(".rego") and not path.endswith(TEST_MODULE_SUFFIX)


def library_files(library: Path) -> dict[str, bytes]:
    """Return the shipped library's Rego modules and data files, keyed by bundle path.

    Raises:
        BundleError: the library directory is missing or uses a path reserved for the bundle.
    """
    if not library.is_dir():
        raise BundleError(f"the Rego library directory {library} does not exist")
    files: dict[str, bytes] = {}
    for name, path in runtime_files(library).items():
        if name in _RESERVED or name.startswith(REPO_PREFIX):
            raise BundleError(f"the Rego library uses {name}, a path reserved for bundles")
        files[name] = path.read_bytes()
    return files


def repo_rego_path(path: str) -> str:
    """Return the bundle path of the repository's Rego module at ``path``."""
    return REPO_PREFIX + path


def data_json(value: Mapping[str, Any]) -> bytes:
    """Return a bundle ``data.json`` holding ``value`` (compact, keys sorted)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(TIME_FORMAT)


def manifest_json(
    commit: str,
    author_time: int,
    source: str,
    *,
    commit_time: int,
    signer: Mapping[str, str] | None = None,
) -> bytes:
    """Return the ``.manifest``: revision is the commit id; metadata says where it came from.

    ``metadata.commit_time`` (the committer date) orders revisions when no repository can
    (see :mod:`edgepolicy.bundles.rollback`); ``metadata.signer`` names who signed the commit, when
    its signature was checked. Both are covered by the bundle signature, like every manifest field.
    """
    metadata: dict[str, Any] = {
        "commit": commit,
        "author_time": _utc(author_time),
        "commit_time": _utc(commit_time),
        "source": source,
    }
    if signer is not None:
        metadata["signer"] = dict(signer)
    manifest = {"revision": commit, "roots": list(ROOTS), "metadata": metadata}
    return data_json(manifest)  # the same compact, sorted encoding
