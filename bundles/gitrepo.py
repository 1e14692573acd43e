"""Read a policy repository at one revision straight from Git's object database.

Nothing here looks at the working tree: a build sees exactly what was committed. Git is run as
a subprocess (``git rev-parse``, ``git ls-tree``, ``git cat-file --batch``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from edgepolicy.errors import BundleError, UsageError

LOCAL_SOURCE = "local"
# GIT_NO_REPLACE_OBJECTS: a build (and its signature check) reads exactly the named commit,
# never a stand-in from refs/replace/ (which a mirror clone fetches too). GIT_GRAFT_FILE: the
# repository's info/grafts cannot give a commit other parents (hiding commits from the
# signature check of every commit, or from the ancestry that orders revisions).
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_GRAFT_FILE": f"{os.devnull}/grafts",  # never a file, and Git does not warn
    "LC_ALL": "C",
}
_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_BLOB_MODES = frozenset({"100644", "100755"})


@dataclass(frozen=True)
class Snapshot:
    """The files of one commit that a bundle is built from."""

    commit: str
    author_time: int
    commit_time: int
    files: dict[str, bytes]


def _git(
    args: Sequence[str], cwd: Path | None, stdin: bytes | None, env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            env={**os.environ, **(env or {}), **_GIT_ENV},
            check=False,
        )
    except FileNotFoundError as error:
        raise BundleError("git is not installed or not on PATH") from error


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Run ``git ARGS`` (with ``env`` added to the environment) and return its standard output.

    Raises:
        BundleError: git is missing or exits non-zero (its stderr is in the message).
    """
    result = _git(args, cwd, stdin, env)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BundleError(f"git {args[0]} failed: {message[-1] if message else 'no output'}")
    return result.stdout


def resolve_commit(repo: Path, rev: str) -> str:
    """Return the full commit id ``rev`` names in ``repo``.

    Raises:
        UsageError: ``repo`` is not a Git repository or ``rev`` names no commit in it.
    """
    if not repo.exists():
        raise UsageError(f"policy repository {repo} does not exist")
    try:
        out = run_git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], cwd=repo
        )
    except BundleError as error:
        raise UsageError(f"{repo}: revision {rev!r} is not a commit ({error})") from error
    return out.decode("ascii").strip()


def check_repository(repo: Path) -> None:
    """Check that ``repo`` is a Git repository.

    Raises:
        UsageError: it does not exist or is not a repository.
    """
    if not repo.is_dir():
        raise UsageError(f"repository {repo} does not exist or is not a directory")
    try:
        run_git(["rev-parse", "--git-dir"], cwd=repo)
    except BundleError as error:
        raise UsageError(f"{repo} is not a Git repository ({error})") from error


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool | None:
    """Return whether commit ``ancestor`` is an ancestor of (or equal to) ``descendant``.

    Both must be full commit ids; None means Git cannot tell (an id is malformed or names no
    commit in ``repo``).

    Raises:
        BundleError: git is not installed.
    """
    if not (_COMMIT_ID.fullmatch(ancestor) and _COMMIT_ID.fullmatch(descendant)):
        return None
    result = _git(["merge-base", "--is-ancestor", ancestor, descendant], repo, None, None)
    return {0: True, 1: False}.get(result.returncode)


def read_snapshot(repo: Path, rev: str, wanted: Callable[[str], bool]) -> Snapshot:
    """Return the commit ``rev`` of ``repo`` with the content of its files ``wanted`` selects.

    Symbolic links and submodules are skipped; only regular files are read.

    Raises:
        UsageError: ``repo`` or ``rev`` is not usable.
        BundleError: Git failed while reading objects.
    """
    commit = resolve_commit(repo, rev)
    times = run_git(["show", "-s", "--format=%at %ct", commit], cwd=repo).decode().split()
    listing = run_git(["ls-tree", "-r", "-z", "--full-tree", commit], cwd=repo)
    blobs: list[tuple[str, str]] = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        mode, kind, sha = meta.decode("ascii").split()
        path = raw_path.decode("utf-8", "surrogateescape")
        if kind == "blob" and mode in _BLOB_MODES and wanted(path):
            blobs.append((path, sha))
    contents = _cat_blobs(repo, [sha for _, sha in blobs])
    files = {path: contents[sha] for path, sha in blobs}
    return Snapshot(
        commit=commit, author_time=int(times[0]), commit_time=int(times[1]), files=files
    )


def _cat_blobs(repo: Path, shas: Sequence[str]) -> dict[str, bytes]:
    """Read many blobs with one ``git cat-file --batch`` process."""
    if not shas:
        return {}
    out = run_git(["cat-file", "--batch"], cwd=repo, stdin="".join(f"{s}\n" for s in shas).encode())
    contents: dict[str, bytes] = {}
    position = 0
    for sha in shas:
        header_end = out.index(b"\n", position)
        header = out[position:header_end].decode("ascii").split()
        if len(header) != 3 or header[1] != "blob":
            raise BundleError(f"git cat-file: unexpected object header {' '.join(header)!r}")
        size = int(header[2])
        start = header_end + 1
        contents[sha] = out[start : start + size]
        position = start + size + 1
    return contents


def redact_url(source: str) -> str:
    """Return ``source`` with any user name or password removed from a URL (never log secrets)."""
    parts = urlsplit(source)
    if not parts.scheme or "@" not in parts.netloc:
        return source
    host = parts.netloc.rpartition("@")[2]  # host and port as written ([::1]:8080 too)
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def source_label(location: str) -> str:
    """Return how a bundle names the repository at ``location`` (a URL or a path).

    Network URLs are kept without user names and passwords, scp-like ``host:path`` locations
    without the user; local paths and ``file://`` URLs become ``local``, so a bundle never
    depends on (or reveals) where a checkout happens to live.
    """
    scheme, separator, _ = location.partition("://")
    if separator:
        return LOCAL_SOURCE if scheme.lower() == "file" else redact_url(location)
    head = location.split("/", 1)[0]
    if ":" not in head:
        return LOCAL_SOURCE
    return head.rpartition("@")[2] + location[len(head) :]


def default_source(repo: Path) -> str:
    """Return the source label of ``repo``: its ``origin`` remote (see :func:`source_label`).

    A repository without an ``origin`` remote is ``local``.
    """
    try:
        origin = run_git(["config", "--get", "remote.origin.url"], cwd=repo)
    except BundleError:  # git exits 1 when the remote is not configured
        return LOCAL_SOURCE
    text = origin.decode("utf-8", "replace").strip()
    return source_label(text) if text else LOCAL_SOURCE
