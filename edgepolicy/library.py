"""The Rego library shipped with edgepolicy, and which of its files make the runtime library.

The runtime library is what enforcement loads: every Rego module except the tests
(``*_test.rego``, which are for ``opa test``) and the data files (``data.json``/``data.yaml``).
:func:`runtime_files` is the one definition: ``check``, ``verify`` and ``serve`` load exactly
these files into OPA (:func:`opa_arguments`, used by :class:`edgepolicy.opa_process.OpaProcess`)
and ``bundle build`` packs exactly these files, so the three paths run the same code. The wheel
leaves the tests out too (pyproject.toml).
"""

from __future__ import annotations

import posixpath
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
TEST_MODULE_SUFFIX = "_test.rego"
DATA_FILE_NAMES = frozenset({"data.json", "data.yaml", "data.yml"})


def library_path() -> Path:
    """Return the directory of the shipped Rego library.

    In a checkout and in an editable install this is ``rego/`` (reached through the package's
    ``policy_library`` symlink, tests included); in a wheel it is the
    ``edgepolicy/policy_library`` package data (tests left out).
    """
    return (_PACKAGE_DIR / "policy_library").resolve()


def is_runtime_file(name: str) -> bool:
    """Return whether the library file at relative path ``name`` is loaded for enforcement:
    a Rego module that is not a test, or a data file."""
    if name.endswith(".rego"):
        return not name.endswith(TEST_MODULE_SUFFIX)
    return posixpath.basename(name) in DATA_FILE_NAMES


def runtime_files(library: Path | None = None) -> dict[str, Path]:
    """Return the runtime files of ``library`` (default: the shipped one), keyed by their
    relative POSIX path, in sorted order; empty if the directory does not exist."""
    root = library or library_path()
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and is_runtime_file(name):
            files[name] = path
    return files


def opa_arguments(path: Path) -> list[str]:
    """Return the ``opa run`` arguments that load ``path``: the shipped library as its runtime
    files (a data file with its directory as the dotted destination, where OPA would have put
    it when loading the directory), any other file or directory as it is."""
    if path.resolve() != library_path():
        return [str(path)]
    arguments = []
    for name, file in runtime_files().items():
        prefix = posixpath.dirname(name).replace("/", ".")
        is_data = not name.endswith(".rego")
        arguments.append(f"{prefix}:{file}" if is_data and prefix else str(file))
    return arguments
