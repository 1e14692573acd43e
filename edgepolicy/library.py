"""Where the Rego library shipped with edgepolicy lives."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def library_path() -> Path:
    """Return the directory of the shipped Rego library.

    In a checkout and in an editable install this is ``rego/`` (reached through the package's
    ``policy_library`` symlink); in a wheel it is the ``edgepolicy/policy_library`` package data.
    """
    return (_PACKAGE_DIR / "policy_library").resolve()
