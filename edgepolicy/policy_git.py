"""Commits on a new branch of a policy repository, written with Git's plumbing only.

Files are read from a commit (never from the working tree), blobs, trees and commits are
written into the object database with a private index file, and the branch is created last
(``git update-ref`` refusing a branch that exists). The user's checked-out branch, index and
working tree are never touched, whatever state they are in.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from edgepolicy.errors import EdgepolicyError

_YAML_SUFFIXES = (".yaml", ".yml")


class GitError(EdgepolicyError):
    """A git command failed (the message names the repository, the command and git's answer)."""


class PolicyRepository:
    """The Git repository at ``path``, read at the commit ``base`` (a revision)."""

    def __init__(self, path: Path, base: str = "HEAD") -> None:
        """Raises:
        GitError: ``path`` is not a Git repository or ``base`` names no commit."""
        self._path = path
        if not path.is_dir():
            raise GitError(f"{path}: no such directory")
        self._git("rev-parse", "--git-dir")
        try:
            self.base = self._git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}").strip()
        except GitError as error:
            raise GitError(f"{path}: {base!r} names no commit") from error
        self._modes: dict[str, str] = {}

    def yaml_files(self) -> list[str]:
        """The paths of the ``.yaml``/``.yml`` files of the base commit, sorted."""
        listing = self._git("ls-tree", "-r", "-z", self.base)
        files = []
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, _, name = entry.partition("\t")
            mode, kind, _ = meta.split(" ", 2)
            if kind == "blob" and name.endswith(_YAML_SUFFIXES) and mode != "120000":
                self._modes[name] = mode
                files.append(name)
        return sorted(files)

    def read(self, path: str) -> str:
        """The text of ``path`` in the base commit (UTF-8).

        Raises:
            GitError: the file is not in the commit or not UTF-8.
        """
        data = self._git_bytes("cat-file", "blob", f"{self.base}:{path}")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise GitError(f"{self._path}: {path} is not UTF-8 text") from error

    def commit(self, parent: str, files: Mapping[str, str], message: str) -> str:
        """Write a commit whose tree is ``parent``'s with ``files`` (path to new text) replaced,
        and return its id. The author and committer are git's configured identity.

        Raises:
            GitError: a git command failed (e.g. no user.name/user.email configured).
        """
        with tempfile.TemporaryDirectory(prefix="edgepolicy-git-") as directory:
            env = {"GIT_INDEX_FILE": str(Path(directory) / "index")}
            self._git("read-tree", parent, env=env)
            for path, text in files.items():
                blob = self._git("hash-object", "-w", "--stdin", data=text.encode()).strip()
                mode = self._modes.get(path, "100644")
                self._git("update-index", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            tree = self._git("write-tree", env=env).strip()
        return self._git(
            "commit-tree", tree, "-p", parent, "-F", "-", data=message.encode()
        ).strip()

    def check_branch_name(self, branch: str) -> None:
        """Raises:
        GitError: ``branch`` is not a valid branch name or the branch exists already."""
        self._git("check-ref-format", "--branch", branch)
        found = subprocess.run(
            [
                "git",
                "-C",
                str(self._path),
                "show-ref",
                "--verify",
                "--quiet",
                f"refs/heads/{branch}",
            ],
            check=False,
            capture_output=True,
        )
        if found.returncode == 0:
            raise GitError(f"{self._path}: branch {branch!r} exists already")

    def create_branch(self, branch: str, commit: str) -> None:
        """Create ``branch`` at ``commit`` (refused if it exists meanwhile).

        Raises:
            GitError: the name is invalid or the branch exists.
        """
        self.check_branch_name(branch)
        self._git(
            "update-ref", "-m", "edgepolicy finops suggest", f"refs/heads/{branch}", commit, ""
        )

    def _git(
        self, *args: str, data: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        return self._git_bytes(*args, data=data, env=env).decode("utf-8", "replace")

    def _git_bytes(
        self, *args: str, data: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> bytes:
        command = ["git", "-C", str(self._path), *args]
        try:
            done = subprocess.run(
                command,
                input=data,
                capture_output=True,
                check=False,
                env={**os.environ, **(env or {})},
            )
        except OSError as error:
            raise GitError(f"cannot run git: {error.strerror}") from error
        if done.returncode != 0:
            answer = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
            raise GitError(f"{self._path}: git {args[0]} failed: {answer}")
        return done.stdout
