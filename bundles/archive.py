"""Reproducible bundle archives: the same files always give the same ``.tar.gz`` bytes.

Entries are regular files only, sorted by name, with a fixed modification time, mode 0644,
uid/gid 0 and no owner names; the gzip header carries no file name and a zero timestamp.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from edgepolicy.errors import BundleError

_GZIP_LEVEL = 9


def tar_gz(files: Mapping[str, bytes], *, mtime: int = 0) -> bytes:
    """Return a reproducible gzipped tar archive holding ``files`` (bundle path → content)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    out = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=out, mtime=0, compresslevel=_GZIP_LEVEL
    ) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def read_tar_gz(data: bytes, *, source: str) -> dict[str, bytes]:
    """Return the regular files of the bundle archive ``data`` (path without leading ``/``).

    Raises:
        BundleError: ``data`` is not a readable gzipped tar archive (``source`` names it).
    """
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name.lstrip("/")] = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BundleError(f"{source}: not a gzipped tar bundle: {error}") from error
    return files


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    Readers see either the old file or the complete new one, never a partial write.

    Raises:
        BundleError: the file cannot be written.
    """
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise BundleError(f"cannot write {path}: {error.strerror or error}") from error
