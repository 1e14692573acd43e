"""The shipped Rego library and its runtime files (the one definition check, serve and
bundles share)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepolicy import library
from edgepolicy.library import is_runtime_file, library_path, opa_arguments, runtime_files


def test_library_path_is_the_rego_directory() -> None:
    path = library_path()
    assert path.is_dir()
    assert path.name == "rego"
    assert any(path.rglob("*.rego"))


@pytest.mark.parametrize(
    ("name", "runtime"),
    [
        ("admission/decision.rego", True),
        ("admission/decision_test.rego", False),
        ("test/fixtures_test.rego", False),
        ("lib/settings/data.json", True),
        ("lib/settings/data.yaml", True),
        ("lib/settings/notes.json", False),
        ("README.md", False),
    ],
)
def test_runtime_files_are_modules_without_tests_and_data(name: str, runtime: bool) -> None:
    assert is_runtime_file(name) is runtime


def test_opa_loads_the_shipped_library_as_its_runtime_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "rego"
    for name in ("x.rego", "x_test.rego", "a/b/data.json", "a/y.rego", "data.json", "a/n.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")
    monkeypatch.setattr(library, "library_path", lambda: root.resolve())
    assert list(runtime_files()) == ["a/b/data.json", "a/y.rego", "data.json", "x.rego"]
    assert opa_arguments(root) == [
        f"a.b:{root / 'a/b/data.json'}",
        str(root / "a/y.rego"),
        str(root / "data.json"),
        str(root / "x.rego"),
    ]
    other = tmp_path / "policies"
    assert opa_arguments(other) == [str(other)]  # any other path is loaded as it is
