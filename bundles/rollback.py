"""No silent rollback: a published bundle is only replaced by the same or a newer revision.

A bundle's revision is a commit id (``.manifest`` ``revision``), and its metadata records the
commit time (see :func:`edgepolicy.bundles.layout.manifest_json`). Replacing the current bundle by a
candidate is a rollback when:

- with a repository that knows both commits: the candidate's commit is a strict ancestor of the
  current one (``git merge-base --is-ancestor``); any other commit, such as a ``git revert`` or
  a merge, is new and goes ahead;
- otherwise (no repository, as in the bundle service, or a commit it does not know): the
  candidate's recorded commit time is earlier than the current one's (the author time is used
  when one of them predates commit times). Equal times go ahead (Git times have one-second
  resolution, so two quick commits may share one); a candidate without a time cannot be shown
  newer than a current bundle with one and is refused.

The same revision is never a rollback (republishing is idempotent). A current bundle that
records no time at all (not built by edgepolicy) gives nothing to compare and is replaced.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgepolicy.bundles.atomic_write import open_folder_inside, write_in_folder
from edgepolicy.bundles.gitrepo import is_ancestor
from edgepolicy.bundles.layout import TIME_FORMAT

from edgepolicy.bundle_format import MANIFEST, parse_manifest, read_tar_gz
from edgepolicy.errors import BundleError, RollbackError

_OVERRIDE = "publish a git revert instead, or allow the rollback explicitly"
SERVICE_OVERRIDE = (
    "publish a git revert instead (this service refuses rollbacks from every uploader; "
    "only its operator can allow them)"
)


@dataclass(frozen=True)
class BundleRevision:
    """The revision of a bundle and the times its manifest records (seconds since the epoch)."""

    revision: str
    commit_time: int | None
    author_time: int | None


def _time(metadata: object, key: str) -> int | None:
    if not isinstance(metadata, dict) or not isinstance(metadata.get(key), str):
        return None
    try:
        return int(datetime.strptime(metadata[key], TIME_FORMAT).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None


def read_revision(archive: bytes, source: str) -> BundleRevision:
    """Return the revision and recorded times of the bundle ``archive``.

    Raises:
        BundleError: the archive is unreadable or has no ``.manifest`` with a string revision
            (the message names ``source``).
    """
    files = read_tar_gz(archive, source=source)
    try:
        manifest = parse_manifest(files.get(MANIFEST), source=source)
    except BundleError as error:
        raise BundleError(f"{source}: bundle has no .manifest with a revision") from error
    if manifest is None or "revision" not in manifest:
        raise BundleError(f"{source}: bundle has no .manifest with a revision")
    revision = manifest["revision"]
    if not isinstance(revision, str):
        raise BundleError(f"{source}: .manifest revision must be a string")
    metadata = manifest.get("metadata")
    return BundleRevision(revision, _time(metadata, "commit_time"), _time(metadata, "author_time"))


def _shown(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(TIME_FORMAT)


def rollback_reason(
    current: BundleRevision, candidate: BundleRevision, repo: Path | None = None
) -> str | None:
    """Return why replacing ``current`` by ``candidate`` is a rollback, or None if it is not.

    Raises:
        BundleError: git is not installed (only with ``repo``).
    """
    if candidate.revision == current.revision:
        return None
    if repo is not None:
        older = is_ancestor(repo, candidate.revision, current.revision)
        if older is not None:
            return f"it is an ancestor of {current.revision}" if older else None
    for kind in ("commit_time", "author_time"):
        new, old = getattr(candidate, kind), getattr(current, kind)
        if new is not None and old is not None:
            if new >= old:
                return None
            what = "committed" if kind == "commit_time" else "authored"
            return f"it was {what} at {_shown(new)}, before {current.revision} ({_shown(old)})"
    if current.commit_time is None and current.author_time is None:
        return None
    return f"it records no commit time, so it cannot be shown to be newer than {current.revision}"


def check_replacement(
    current: bytes | None,
    candidate: bytes,
    *,
    where: str,
    repo: Path | None = None,
    override: str = _OVERRIDE,
) -> None:
    """Refuse to replace the bundle ``current`` at ``where`` by ``candidate`` if that rolls back.

    ``current`` is None when ``where`` holds no bundle yet. ``override`` ends a refusal: what
    the one refused can do instead.

    Raises:
        RollbackError: it would be a rollback, or the current bundle cannot be read (so the
            replacement cannot be shown not to be one).
        BundleError: ``candidate`` is not a bundle with a revision (checked only when there is
            a current bundle).
    """
    if current is None:
        return
    new = read_revision(candidate, "the new bundle")
    try:
        old = read_revision(current, f"the bundle at {where}")
    except BundleError as error:
        raise RollbackError(
            f"cannot tell whether revision {new.revision} is older than what {where} holds "
            f"({error}); refusing to replace it; {override}"
        ) from error
    reason = rollback_reason(old, new, repo)
    if reason is not None:
        raise RollbackError(
            f"refusing to replace revision {old.revision} at {where} by revision "
            f"{new.revision}: {reason}, so that would roll the policy back; {override}"
        )


@contextmanager
def _directory_lock(directory: Path, inside: Path | None) -> Iterator[int]:
    """Hold an exclusive lock on ``directory`` (publishers of one directory take turns) and
    yield its descriptor; with ``inside``, it is opened without leaving that folder."""
    if inside is not None:
        fd = open_folder_inside(inside, directory)
    else:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY)
        except OSError as error:
            raise BundleError(f"cannot open {directory}: {error.strerror or error}") from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _current(folder: int, path: Path, *, follow: bool) -> bytes | None:
    """Return the file ``path`` in the open folder ``folder``, or None if it is not a file.

    Raises:
        BundleError: it cannot be read (or, unless ``follow``, it is a symbolic link).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        with open(os.open(path.name, flags, dir_fd=folder), "rb") as current:
            return current.read() if stat.S_ISREG(os.fstat(current.fileno()).st_mode) else None
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BundleError(f"cannot read {path}: {error.strerror or error}") from error


def replace_bundle_file(
    path: Path,
    archive: bytes,
    *,
    repo: Path | None = None,
    allow_rollback: bool = False,
    where: str | None = None,
    override: str = _OVERRIDE,
    inside: Path | None = None,
) -> None:
    """Write ``archive`` to ``path`` atomically unless that would roll back the bundle there.

    The check and the write happen under a lock on the directory, so two publishers (or a
    publisher and the bundle service) cannot interleave them. ``where`` names the place in
    messages (default: ``path``); ``override`` ends a refusal (see :func:`check_replacement`).
    With ``inside`` (a resolved directory holding ``path``), the folders on the way are opened
    without following symbolic links (:func:`open_folder_inside`), and a link at ``path`` is
    neither read nor written through, so nothing outside ``inside`` is touched.

    Raises:
        RollbackError: see :func:`check_replacement` (nothing is written).
        BundleError: the file cannot be read or written.
    """
    with _directory_lock(path.parent, inside) as folder:
        if not allow_rollback:
            current = _current(folder, path, follow=inside is None)
            check_replacement(
                current, archive, where=where or str(path), repo=repo, override=override
            )
        write_in_folder(folder, path.name, archive, shown=path)
