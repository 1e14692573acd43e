"""SHA-256 of files, streamed: a multi-gigabyte model never sits in memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgepolicy.errors import ModelInputError

CHUNK_BYTES = 1 << 20


def file_digest(path: Path) -> tuple[str, int]:
    """Return the hex SHA-256 and the size in bytes of the file at ``path``.

    Raises:
        ModelInputError: the file cannot be read (naming it).
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise ModelInputError(f"cannot read: {error.strerror or error}", path=str(path)) from error
    return digest.hexdigest(), size
