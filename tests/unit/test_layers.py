"""The package's layers: the core knows nothing of its consumers, and only the CLI knows all.

core (edgepolicy.*, edgepolicy.models, edgepolicy.output) < edgepolicy.webhook, edgepolicy.bundles
< edgepolicy.cli. An import running back up a layer fails here, naming the file and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# __main__ is `python -m edgepolicy`: the command line's entry, above every layer.
CORE = [
    path
    for path in (ROOT / "edgepolicy").rglob("*.py")
    if "cli" not in path.relative_to(ROOT).parts and path.name != "__main__.py"
]
LAYERS = {
    "core": (CORE, ("edgepolicy.webhook", "edgepolicy.bundles", "edgepolicy.cli")),
    "webhook": (list((ROOT / "webhook").rglob("*.py")), ("edgepolicy.bundles", "edgepolicy.cli")),
    "bundles": (list((ROOT / "bundles").rglob("*.py")), ("edgepolicy.webhook", "edgepolicy.cli")),
}


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at any depth (imports inside functions count too)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_no_import_runs_back_up(layer: str) -> None:
    files, forbidden = LAYERS[layer]
    assert files, f"no files found for layer {layer}"
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files
        for module in imported_modules(path)
        if module.startswith(forbidden) or module.split(".")[0] in ("webhook", "bundles")
    ]
    assert wrong == []


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from edgepolicy.cli import main\n    return main\n")
    assert "edgepolicy.cli" in imported_modules(probe)
