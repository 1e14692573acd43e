"""What `pip install edgepolicy` gets: the wheel built from this checkout holds the runtime
library only (no Rego tests), the LICENSE and the project metadata; the image's base is pinned
by digest with its tag beside it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from edgepolicy.library import runtime_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel built from the files the Dockerfile copies (setuptools builds in the tree:
    a copy keeps the checkout clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("edgepolicy", "webhook", "bundles", "rego"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--wheel-dir", str(out), str(source)],
        check=True, timeout=300,
    )  # fmt: skip
    [path] = out.glob("edgepolicy-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_ships_the_runtime_library_only(wheel: zipfile.ZipFile) -> None:
    prefix = "edgepolicy/policy_library/"
    shipped = {name[len(prefix) :] for name in wheel.namelist() if name.startswith(prefix)}
    assert shipped == set(runtime_files())
    assert not any(name.endswith("_test.rego") for name in wheel.namelist())


def test_the_wheel_carries_the_license_and_metadata(wheel: zipfile.ZipFile) -> None:
    [license_file] = [name for name in wheel.namelist() if name.endswith("/licenses/LICENSE")]
    assert wheel.read(license_file) == (ROOT / "LICENSE").read_bytes()
    assert b"Apache License\n                           Version 2.0" in wheel.read(license_file)
    [metadata_file] = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(wheel.read(metadata_file).decode())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Programming Language :: Python :: 3 :: Only" in metadata.get_all("Classifier")
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)


def test_the_image_base_is_pinned_by_digest_with_its_tag() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    [index] = [i for i, line in enumerate(lines) if line.startswith("ARG PYTHON_IMAGE=")]
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python@sha256:[0-9a-f]{64}", lines[index])
    assert re.fullmatch(r"# python:[0-9.]+-slim-\w+", lines[index - 1])


def test_the_wheel_installs_one_import_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist() if ".dist-info/" not in name}
    assert tops == {"edgepolicy"}
    names = set(wheel.namelist())
    assert {"edgepolicy/webhook/app.py", "edgepolicy/bundles/bundle_service.py"} <= names
    assert "edgepolicy/cli/__init__.py" in names
    [top_level] = [n for n in names if n.endswith(".dist-info/top_level.txt")] or [None]
    if top_level is not None:
        assert wheel.read(top_level).decode().split() == ["edgepolicy"]
