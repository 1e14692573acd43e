"""Replace a file all at once: readers see the old content or the new, never a partial write.

The bundle service also writes (and reads) without leaving its folder: :func:`open_folder_inside`
opens the folder of a file one name at a time from the served root, never through a symbolic
link, and the file is then written (or read) relative to that open folder, so a link put on the
way after the path was checked cannot lead outside.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from edgepolicy.errors import BundleError

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    Readers see either the old file or the complete new one, never a partial write.

    Raises:
        BundleError: the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, _FOLDER)
    except OSError as error:
        raise BundleError(f"cannot write {path}: {error.strerror or error}") from error
    try:
        write_in_folder(folder, path.name, data, shown=path)
    finally:
        os.close(folder)


def write_in_folder(folder: int, name: str, data: bytes, *, shown: Path) -> None:
    """Write ``data`` as ``name`` in the open folder ``folder`` (a descriptor), atomically.

    ``shown`` names the file in messages.

    Raises:
        BundleError: the file cannot be written.
    """
    temporary = f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with open(os.open(temporary, flags, 0o644, dir_fd=folder), "wb") as written:
            try:
                written.write(data)
                written.flush()
                os.fchmod(written.fileno(), 0o644)
                os.fsync(written.fileno())
                os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=folder)
                raise
    except OSError as error:
        raise BundleError(f"cannot write {shown}: {error.strerror or error}") from error


def open_folder_inside(root: Path, folder: Path, *, make: bool = True) -> int:
    """Open ``folder`` (under the directory ``root``) and return its descriptor.

    Each name on the way from ``root`` is opened without following a symbolic link (and, with
    ``make``, made when missing), so the folder returned is inside ``root`` whatever changed
    since ``folder`` was checked.

    Raises:
        BundleError: ``folder`` is not under ``root``, a name on the way is a symbolic link or
            not a folder (or missing, without ``make``), or a folder cannot be made or opened.
    """
    try:
        names = folder.relative_to(root).parts
    except ValueError:
        raise BundleError(f"cannot write into {folder}: not inside {root}") from None
    try:
        current = os.open(root, _FOLDER)
    except OSError as error:
        raise BundleError(f"cannot open {root}: {error.strerror or error}") from error
    try:
        for name in names:
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=current)
            following = os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=current)
            os.close(current)
            current = following
    except OSError as error:
        os.close(current)
        raise BundleError(
            f"cannot write into {folder}: {name!r} on the way is not a folder "
            f"(a symbolic link?): {error.strerror or error}"
        ) from error
    return current
