"""A directory of bundle files watched for changes, with waiters for OPA's long polling.

Publishers replace files atomically (write to a temporary name, then rename), so a file is
either the old bundle or the complete new one. The store notices a change by polling the files'
metadata a few times a second (:meth:`BundleStore.watch`, a task on the serving event loop) and
wakes every request waiting for a newer bundle; an upload through the service wakes them at once
(:meth:`BundleStore.changed`).

Every URL path goes through :meth:`BundleStore.locate`, the one guard that keeps reads and
writes inside the directory: no empty, ``.`` or ``..`` segment, no hidden name (``.token``,
Kubernetes' ``..data``), no NUL or backslash, and the resolved path (symbolic links followed)
must stay under the resolved root. A link inside may lead into a hidden folder inside: that is
how kubelet lays out a ConfigMap volume (``edgepolicy.tar.gz -> ..data/edgepolicy.tar.gz``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edgepolicy.bundles.atomic_write import open_folder_inside

from edgepolicy.errors import BundleError, UsageError

POLL_SECONDS = 0.05
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block
_SHOWN_PATH_CHARS = 100  # a refused path is quoted cut to this many characters


@dataclass(frozen=True)
class BundleFile:
    """One bundle as served: its bytes and their ETag (quoted SHA-256 prefix)."""

    content: bytes
    etag: str


def shown(path: str) -> str:
    """Return ``path`` quoted for a message, cut to a bounded length."""
    cut = path if len(path) <= _SHOWN_PATH_CHARS else path[:_SHOWN_PATH_CHARS] + "..."
    return repr(cut)


class BundleStore:
    """Serve the files under ``root`` by relative path; tell waiters when any file changes."""

    def __init__(self, root: Path) -> None:
        """Serve ``root``.

        Raises:
            UsageError: ``root`` is not a directory.
        """
        if not root.is_dir():
            raise UsageError(f"bundle directory {root} does not exist or is not a directory")
        self.root = root.resolve()
        self._files: dict[Path, tuple[tuple[int, int, int], BundleFile]] = {}
        self._found: dict[str, BundleFile] = {}  # what waiters found, until the next change
        self._releasing = False
        self._changed = asyncio.Event()
        self._signature = self._scan()

    def locate(self, url_path: str) -> Path:
        """Return the path under the root that the URL path ``url_path`` names.

        The file need not exist. Symbolic links are followed; the result is inside the root.

        Raises:
            BundleError: the path is empty, has a hidden, ``.`` or ``..`` segment, a NUL or a
                backslash, or resolves outside the root.
        """
        parts = [p for p in url_path.split("/") if p]
        refused = (
            not parts
            or any(p.startswith(".") for p in parts)  # hidden files, "." and ".."
            or "\0" in url_path
            or "\\" in url_path
        )
        if not refused:
            try:
                path = self.root.joinpath(*parts).resolve()
            except (OSError, RuntimeError):  # a symbolic link loop
                refused = True
            else:  # a link may lead into a hidden folder inside (kubelet's ..data): fine
                refused = path == self.root or not path.is_relative_to(self.root)
        if refused:
            raise BundleError(f"not a bundle path: {shown(url_path)}")
        return path

    def get(self, url_path: str) -> BundleFile | None:
        """Return the bundle at ``url_path``, or None if there is none (or the path is refused).

        The file is looked at on every call (it is read again only when its metadata changed),
        opened through :func:`open_folder_inside`, so never outside the root.
        """
        try:
            path = self.locate(url_path)
            # Opened from the root without following links: the file checked, not one a link
            # made since then leads to (the located path has none left to follow).
            folder = open_folder_inside(self.root, path.parent, make=False)
            try:
                fd = os.open(path.name, _FILE, dir_fd=folder)
            finally:
                os.close(folder)
            with open(fd, "rb") as file:
                found = os.fstat(file.fileno())
                if not stat.S_ISREG(found.st_mode):
                    return None
                identity = (found.st_mtime_ns, found.st_size, found.st_ino)
                cached = self._files.get(path)
                if cached is not None and cached[0] == identity:
                    return cached[1]
                content = file.read()
        except (BundleError, OSError):
            return None
        bundle = BundleFile(content, f'"{hashlib.sha256(content).hexdigest()[:32]}"')
        self._files[path] = (identity, bundle)  # files that exist: requests cannot grow this
        return bundle

    async def wait_for(
        self, url_path: str, etags: frozenset[str], timeout: float
    ) -> BundleFile | None:
        """Wait up to ``timeout`` seconds for the bundle at ``url_path`` to differ from ``etags``.

        Returns the new bundle, or None when nothing changed in time (or it disappeared, or
        the store was released).
        Waiters look their bundle up by URL path until the next change, so that a thousand of
        them woken by a publish cost one lookup, not a thousand.
        """
        key = "/".join(part for part in url_path.split("/") if part)  # "//a" is "/a"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            current = self._found.get(key) or self.get(url_path)
            if current is not None:
                self._found[key] = current  # a path that exists: requests cannot grow this
                if current.etag not in etags:
                    return current
            remaining = deadline - loop.time()
            if remaining <= 0 or self._releasing:
                return None
            try:
                async with asyncio.timeout(remaining):  # no task per waiter, as wait_for makes
                    await changed.wait()
            except TimeoutError:
                return None

    def release(self) -> None:
        """End every wait now and any later one at once (the service is stopping)."""
        self._releasing = True
        self.changed()

    def changed(self) -> None:
        """Forget what was read and wake every waiter (they look at their bundle again)."""
        self._found.clear()
        self._files.clear()
        self._changed, woken = asyncio.Event(), self._changed
        woken.set()

    async def watch(self) -> None:
        """Poll the directory for changes, waking the waiters on each; runs until cancelled."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            signature = self._scan()
            if signature != self._signature:
                self._signature = signature
                self.changed()

    def _scan(self) -> frozenset[tuple[str, int, int, int]]:
        found = set()
        for path in self.root.rglob("*"):
            try:
                status = path.stat()
            except OSError:
                continue
            if path.is_file():
                found.add((str(path), status.st_mtime_ns, status.st_size, status.st_ino))
        return frozenset(found)
