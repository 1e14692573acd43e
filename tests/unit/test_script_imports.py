"""The Python that shell scripts run inline (scripts/run.sh: `make run`) imports real names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"^from (edgepolicy[\w.]*) import ([\w, ]+)$", re.MULTILINE)
IMPORTS = [
    (script.name, module, name.strip())
    for script in sorted((ROOT / "scripts").glob("*.sh"))
    for module, names in IMPORT.findall(script.read_text(encoding="utf-8"))
    for name in names.split(",")
]


def test_the_scripts_import_something() -> None:
    assert any(script == "run.sh" for script, _, _ in IMPORTS)


@pytest.mark.parametrize(("script", "module", "name"), IMPORTS)
def test_each_inline_import_resolves(script: str, module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{script}: {module}.{name}"
