"""A directory of bundle files watched for changes, with waiters for OPA's long polling.

Publishers replace files atomically (write to a temporary name, then rename), so a file is
either the old bundle or the complete new one. The store notices a change by polling the files'
metadata a few times a second and wakes every request waiting for a newer bundle.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgepolicy.errors import UsageError

POLL_SECONDS = 0.05


@dataclass(frozen=True)
class BundleFile:
    """One bundle as served: its bytes and their ETag (quoted SHA-256 prefix)."""

    content: bytes
    etag: str


class BundleStore:
    """Serve the files under ``root`` by relative path; tell waiters when any file changes."""

    def __init__(self, root: Path) -> None:
        """Watch ``root``.

        Raises:
            UsageError: ``root`` is not a directory.
        """
        if not root.is_dir():
            raise UsageError(f"bundle directory {root} does not exist or is not a directory")
        self.root = root.resolve()
        self._cache: dict[Path, tuple[tuple[int, int, int], BundleFile]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        self._stopped = threading.Event()
        self._signature = self._scan()
        self._watcher = threading.Thread(target=self._watch, name="bundle-store", daemon=True)
        self._watcher.start()

    def _resolve(self, relative: str) -> Path | None:
        """Map a URL path to a file under the root; None if outside, hidden or missing."""
        parts = [p for p in relative.split("/") if p]
        if not parts or any(p.startswith(".") for p in parts):
            return None
        path = (self.root / Path(*parts)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path

    def get(self, relative: str) -> BundleFile | None:
        """Return the bundle at ``relative`` (a URL path), or None if there is none."""
        path = self._resolve(relative)
        if path is None:
            return None
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            with self._lock:
                cached = self._cache.get(path)
                if cached is not None and cached[0] == key:
                    return cached[1]
            content = path.read_bytes()
        except OSError:
            return None
        bundle = BundleFile(content, f'"{hashlib.sha256(content).hexdigest()[:32]}"')
        with self._lock:
            self._cache[path] = (key, bundle)
        return bundle

    def wait_for(self, relative: str, etags: frozenset[str], timeout: float) -> BundleFile | None:
        """Wait up to ``timeout`` seconds for the bundle at ``relative`` to differ from ``etags``.

        Returns the new bundle, or None when nothing changed in time (or it disappeared).
        """
        deadline = time.monotonic() + timeout
        while not self._stopped.is_set():
            with self._lock:
                generation = self._generation
            current = self.get(relative)
            if current is not None and current.etag not in etags:
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(remaining)
        return None

    def close(self) -> None:
        """Stop watching and release every waiter."""
        self._stopped.set()
        with self._changed:
            self._changed.notify_all()
        self._watcher.join(timeout=2)

    def _scan(self) -> frozenset[tuple[str, int, int, int]]:
        found = set()
        for path in self.root.rglob("*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                found.add((str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return frozenset(found)

    def _watch(self) -> None:
        while not self._stopped.wait(POLL_SECONDS):
            signature = self._scan()
            if signature != self._signature:
                self._signature = signature
                with self._changed:
                    self._generation += 1
                    self._changed.notify_all()
