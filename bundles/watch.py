"""The GitOps loop: follow a branch, and build, sign and publish every new head commit.

The repository (a URL or a local path) is mirrored into a work directory and fetched every
interval. Whenever the branch head differs from the last commit published, the bundle of that
commit is built, signed and published to every target; a revert is a new commit, so the
reverted policy goes out as a new revision. A commit that fails to build, is not trusted (its
signature, see :mod:`edgepolicy.bundles.commit_trust`; with scope ``all``, every commit since the
last one this loop published) or would roll a target back is reported once and skipped (the last
good bundle stays published); failures to fetch or publish are retried on the next round.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgepolicy.bundles.builder import build_bundle
from edgepolicy.bundles.commit_trust import CommitVerifier, TrustPolicy, commit_verifier
from edgepolicy.bundles.gitrepo import redact_url, resolve_commit, run_git
from edgepolicy.bundles.oci_registry import RegistryAccess
from edgepolicy.bundles.publish import DEFAULT_BUNDLE_NAME, Target, publish
from edgepolicy.bundles.signing import SigningKey

from edgepolicy.errors import (
    BundleError,
    EdgepolicyError,
    InputError,
    OpaError,
    RollbackError,
    UntrustedCommitError,
    UsageError,
)

_SKIPPED = (InputError, OpaError, UntrustedCommitError, RollbackError)  # not retried


@dataclass(frozen=True)
class WatchConfig:
    """What the loop follows and where it publishes."""

    source: str
    branch: str
    targets: Sequence[Target]
    opa: Path
    workdir: Path
    signing_key: SigningKey | None = None
    bundle_name: str = DEFAULT_BUNDLE_NAME
    interval: float = 10.0
    max_iterations: int | None = None
    token: str | None = None
    ca_file: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    bundle_source: str | None = None  # the manifest's metadata.source; None: from ``source``
    trust: TrustPolicy | None = None  # which commits may be published; None: any
    since: tuple[str, ...] = ()  # with trust scope "all": check only commits after these
    allow_rollback: bool = False
    registry: RegistryAccess | None = None  # for oci:// targets; None: Docker config, HTTPS


@dataclass
class WatchState:
    """What the loop has done so far."""

    published: str | None = None
    failed: str | None = None
    rounds: int = 0
    errors: list[str] = field(default_factory=list)


def mirror_dir(workdir: Path, source: str) -> Path:
    """Return the mirror clone's directory for ``source`` inside ``workdir``."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return workdir / f"mirror-{digest}.git"


def sync_mirror(source: str, mirror: Path) -> None:
    """Clone ``source`` as a bare mirror the first time, fetch it afterwards.

    Raises:
        BundleError: Git cannot clone or fetch (the message never contains credentials).
    """
    try:
        if (mirror / "HEAD").is_file():
            run_git(["fetch", "--quiet", "--prune", "origin"], cwd=mirror)
        else:
            mirror.parent.mkdir(parents=True, exist_ok=True)
            run_git(["clone", "--quiet", "--mirror", "--", source, str(mirror)])
    except BundleError as error:
        detail = str(error).replace(source, redact_url(source))
        raise BundleError(f"cannot fetch {redact_url(source)}: {detail}") from None


def _since(config: WatchConfig, state: WatchState, mirror: Path) -> tuple[str, ...]:
    """Return the revisions after which every commit must be signed (scope ``all``)."""
    if state.published is None:
        return config.since
    try:
        resolve_commit(mirror, state.published)
    except UsageError:  # history rewritten and pruned: check the whole history again
        return config.since
    return (*config.since, state.published)


def run_round(
    config: WatchConfig,
    state: WatchState,
    report: Callable[[str], None],
    report_error: Callable[[str], None],
    verifier: CommitVerifier | None = None,
) -> None:
    """Run one round: fetch, and build and publish the branch head if it is new.

    Each publication goes to ``report``; a commit that does not build, is not trusted by
    ``verifier`` or would roll a target back goes to ``report_error``.

    Raises:
        InputError, OpaError: the head commit does not build (it is not retried).
        UntrustedCommitError: the head (or a commit since the last published) is not trusted.
        RollbackError: a target holds a newer revision (not retried).
        BundleError, UsageError: fetching or publishing failed (retried next round).
    """
    mirror = mirror_dir(config.workdir, config.source)
    sync_mirror(config.source, mirror)
    head = resolve_commit(mirror, f"refs/heads/{config.branch}")
    if head in (state.published, state.failed):
        return
    try:
        bundle = build_bundle(
            mirror,
            head,
            opa=config.opa,
            signing_key=config.signing_key,
            source=config.bundle_source,
            verifier=verifier,
            since=_since(config, state, mirror),
        )
        for target in config.targets:
            where = publish(
                bundle.archive,
                target,
                bundle_name=config.bundle_name,
                token=config.token,
                ca_file=config.ca_file,
                kubeconfig=config.kubeconfig,
                context=config.kube_context,
                source=f"bundle of commit {head}",
                repo=mirror,
                allow_rollback=config.allow_rollback,
                registry=config.registry,
            )
            signed_by = f", commit signed by {bundle.signer}" if bundle.signer else ""
            report(f"published {where}{signed_by}")
    except _SKIPPED as error:
        state.failed = head
        kept = ""
        if state.published and isinstance(error, UntrustedCommitError | RollbackError):
            kept = f"; revision {state.published} stays published"
        report_error(f"commit {head} not published: {error}{kept}")
        raise
    state.published = head


def watch(
    config: WatchConfig,
    report: Callable[[str], None],
    report_error: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> WatchState:
    """Run rounds every ``interval`` seconds, ``max_iterations`` times or forever.

    Publications go to ``report``. Errors of a round go to ``report_error`` and are kept in the
    returned state; the loop goes on, and the last good bundle stays published.

    Raises:
        UsageError, BundleError: the commit trust policy's keyring cannot be set up.
    """
    state = WatchState()
    with commit_verifier(config.trust) as verifier:
        while config.max_iterations is None or state.rounds < config.max_iterations:
            state.rounds += 1
            try:
                run_round(config, state, report, report_error, verifier)
            except _SKIPPED as error:
                state.errors.append(str(error))  # already reported by run_round
            except EdgepolicyError as error:
                state.errors.append(str(error))
                report_error(f"round {state.rounds}: {error}")
            if config.max_iterations is None or state.rounds < config.max_iterations:
                sleep(config.interval)
    return state
