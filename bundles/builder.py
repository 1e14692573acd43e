"""Build an OPA bundle from a policy repository at one Git revision.

The result is a standard OPA bundle (``.manifest``, Rego modules, ``data.json``), optionally
signed (``.signatures.json``), packed reproducibly: the same commit, library and key give
byte-identical bytes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgepolicy.bundles import layout
from edgepolicy.bundles.atomic_write import write_atomically
from edgepolicy.bundles.commit_trust import CommitVerifier, Signer
from edgepolicy.bundles.gitrepo import (
    Snapshot,
    default_source,
    read_snapshot,
    redact_url,
    resolve_commit,
)
from edgepolicy.bundles.settings import SETTINGS_FILE, parse_settings
from edgepolicy.bundles.signing import SigningKey, signatures_document
from edgepolicy.bundles.validation import check_names, validate_bundle, validate_policies

from edgepolicy.bundle_format import MANIFEST, SIGNATURES, tar_gz
from edgepolicy.errors import InputError
from edgepolicy.library import library_path
from edgepolicy.manifests import MANIFEST_SUFFIXES, Manifest, is_policy_object, load_text
from edgepolicy.policy_data import policies_to_data, policy_key
from edgepolicy.validated_policies import ValidatedPolicies


@dataclass(frozen=True)
class Bundle:
    """A built bundle: its archive bytes and what went into it."""

    revision: str
    archive: bytes
    files: tuple[str, ...]
    policies: int
    signed: bool
    signer: Signer | None = None


def _wanted(path: str) -> bool:
    return layout.is_rego(path) or Path(path).suffix.lower() in MANIFEST_SUFFIXES


def policy_manifests(snapshot: Snapshot) -> list[Manifest]:
    """Return every FinOpsPolicy and ModelPolicy object in the snapshot's YAML/JSON files.

    Files that hold other YAML are fine; a file that is not valid YAML fails the build, since
    it might hold policies that would silently go missing.

    Raises:
        InputError: a manifest file cannot be parsed (names the file and line).
    """
    found: list[Manifest] = []
    for path in sorted(snapshot.files):
        if Path(path).suffix.lower() not in MANIFEST_SUFFIXES:
            continue
        try:
            text = snapshot.files[path].decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError("not UTF-8 text", path=path) from error
        found.extend(m for m in load_text(text, path, strict=False) if is_policy_object(m.obj))
    return found


def bundle_files(
    snapshot: Snapshot, validated: ValidatedPolicies, source: str, signer: Signer | None = None
) -> dict[str, bytes]:
    """Return the unsigned bundle's files (bundle path → content), with the validator's output
    ``validated`` (see :func:`edgepolicy.bundles.validation.validate_policies`) as the policies'
    data.

    ``signer`` (who signed the commit, when that was checked) goes into the manifest.

    Raises:
        InputError: the settings file is malformed.
        BundleError: the shipped library is missing or clashes with bundle paths.
    """
    files = layout.library_files(library_path())
    for path, content in snapshot.files.items():
        if layout.is_rego(path):
            files[layout.repo_rego_path(path)] = content
    data = policies_to_data(validated)
    files[layout.POLICIES_DATA] = layout.data_json(data)
    if SETTINGS_FILE in snapshot.files:
        files[layout.SETTINGS_DATA] = layout.data_json(
            parse_settings(snapshot.files[SETTINGS_FILE])
        )
    files[MANIFEST] = layout.manifest_json(
        snapshot.commit,
        snapshot.author_time,
        redact_url(source),
        commit_time=snapshot.commit_time,
        signer=signer.metadata() if signer is not None else None,
    )
    return files


def _check_keys(policies: list[Manifest]) -> None:
    """Reject policy objects without a valid name, or sharing kind, namespace and name."""
    seen: dict[tuple[str, str, str], Manifest] = {}
    for manifest in policies:
        kind = str(manifest.obj.get("kind"))
        try:
            namespace, name = policy_key(manifest.obj)
            check_names(kind, namespace, name)
        except InputError as error:
            raise InputError(str(error), path=manifest.path, line=manifest.line) from error
        key = (kind, namespace, name)
        first = seen.setdefault(key, manifest)
        if first is not manifest:
            raise InputError(
                f"duplicate {key[0]} {namespace}/{name}, first defined at "
                f"{first.path}:{first.line}; each policy needs its own name",
                path=manifest.path,
                line=manifest.line,
            )


def build_bundle(
    repo: Path,
    rev: str = "HEAD",
    *,
    opa: Path,
    signing_key: SigningKey | None = None,
    source: str | None = None,
    verifier: CommitVerifier | None = None,
    since: tuple[str, ...] = (),
) -> Bundle:
    """Build the bundle of ``repo`` at ``rev``, validated by the real OPA at ``opa``.

    ``source`` is recorded in the manifest's metadata (user names and passwords in URLs are
    removed); by default it is the repository's ``origin`` remote URL, or ``local`` (see
    :func:`edgepolicy.bundles.gitrepo.source_label`), never the local path, so every checkout
    of a commit gives the same bytes.

    With a ``verifier`` the commit's signature is checked first (and, per its policy, the
    commits since the revisions ``since``); the signer is recorded in the manifest.

    Raises:
        UsageError: ``repo`` is not a Git repository or ``rev`` is not a commit in it.
        InputError: a manifest cannot be parsed or a policy object is invalid (the message
            names the file, the object and the field).
        OpaError: OPA cannot load the bundle (e.g. the repository's Rego does not compile).
        UntrustedCommitError: the verifier's policy requires signed commits and a commit
            checked is not signed by an allowed key.
        BundleError: Git or the library could not be read.
    """
    commit = resolve_commit(repo, rev)
    signer = verifier.check(repo, commit, since) if verifier is not None else None
    snapshot = read_snapshot(repo, commit, _wanted)
    policies = policy_manifests(snapshot)
    _check_keys(policies)
    validated = validate_policies(policies)
    origin = source if source is not None else default_source(repo)
    files = bundle_files(snapshot, validated, origin, signer)
    with tempfile.TemporaryDirectory(prefix="edgepolicy-bundle-") as tmp:
        unsigned = Path(tmp, "unsigned.tar.gz")
        unsigned.write_bytes(tar_gz(files))
        validate_bundle(opa, unsigned, policies, validated)
    if signing_key is not None:
        files[SIGNATURES] = signatures_document(files, signing_key)
    return Bundle(
        revision=snapshot.commit,
        archive=tar_gz(files, mtime=snapshot.commit_time),
        files=tuple(sorted(files)),
        policies=len(policies),
        signed=signing_key is not None,
        signer=signer,
    )


def write_bundle(bundle: Bundle, out: Path) -> None:
    """Write ``bundle`` to ``out`` atomically (nothing is written if anything fails).

    Raises:
        BundleError: the file cannot be written.
    """
    write_atomically(out, bundle.archive)
