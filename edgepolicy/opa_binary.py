"""Locate the OPA binary edgepolicy runs.

Search order: an explicit path (the command line's ``--opa``), ``$EDGEPOLICY_OPA``,
``.tools/bin/opa`` of the project checkout (or of the current directory), then ``opa`` on
``PATH``. Messages name the path, not the flag: the command line adds it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgepolicy.errors import OpaNotFoundError

ENV_VAR = "EDGEPOLICY_OPA"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _candidates(explicit: str | None) -> list[tuple[str, Path | None]]:
    found_on_path = shutil.which("opa")
    return [
        ("explicit", Path(explicit) if explicit else None),
        (f"${ENV_VAR}", Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None),
        (".tools/bin/opa", _PROJECT_ROOT / ".tools" / "bin" / "opa"),
        (".tools/bin/opa", Path.cwd() / ".tools" / "bin" / "opa"),
        ("PATH", Path(found_on_path) if found_on_path else None),
    ]


def find_opa(explicit: str | None = None) -> Path:
    """Return the path of the OPA binary to use.

    Raises:
        OpaNotFoundError: an explicitly named binary is missing, or none was found at all.
    """
    for source, path in _candidates(explicit):
        if path is None:
            continue
        if path.is_file() and os.access(path, os.X_OK):
            return path
        if source == "explicit":
            raise OpaNotFoundError(f"{path}: OPA binary not found or not executable")
        if source == f"${ENV_VAR}":
            raise OpaNotFoundError(
                f"OPA binary named by {source} not found or not executable: {path}"
            )
    raise OpaNotFoundError(
        "no OPA binary found: set $EDGEPOLICY_OPA, run `make setup` "
        "(builds the pinned OPA into .tools/bin/opa), or put `opa` on PATH"
    )
