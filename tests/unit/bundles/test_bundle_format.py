"""Reproducible bundle archives."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import pytest
from edgepolicy.bundles.atomic_write import write_atomically

from edgepolicy.bundle_format import parse_manifest, read_tar_gz, tar_gz
from edgepolicy.errors import BundleError

FILES = {"b/data.json": b"{}", ".manifest": b'{"revision":"r"}', "a.rego": b"package a\n"}


def test_same_files_give_identical_bytes_whatever_the_insertion_order() -> None:
    assert tar_gz(FILES, mtime=5) == tar_gz(dict(reversed(list(FILES.items()))), mtime=5)


def test_entries_are_sorted_owned_by_root_with_fixed_time_and_mode() -> None:
    archive = tar_gz(FILES, mtime=1_767_225_600)
    assert archive[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(FILES)
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 1_767_225_600
        assert member.mode == 0o644
        assert member.isfile()


def test_read_back() -> None:
    assert read_tar_gz(tar_gz(FILES), source="x") == FILES


def test_reading_garbage_names_the_source() -> None:
    with pytest.raises(BundleError, match="upload.tar.gz: not a gzipped tar bundle"):
        read_tar_gz(gzip.compress(b"not a tar"), source="upload.tar.gz")


def test_write_atomically_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "bundle.tar.gz"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["bundle.tar.gz"]


def test_write_failure_is_a_bundle_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BundleError, match="cannot write"):
        write_atomically(blocker / "bundle.tar.gz", b"x")


def test_the_manifest_is_parsed_in_one_place() -> None:
    assert parse_manifest(b'{"revision":"r"}', source="x") == {"revision": "r"}
    assert parse_manifest(None, source="x") is None
    assert parse_manifest(b"", source="x") is None
    with pytest.raises(BundleError, match=r"^b.tar.gz: the bundle's .manifest is not a JSON"):
        parse_manifest(b"[1]", source="b.tar.gz")
    with pytest.raises(BundleError, match=r"^b.tar.gz: cannot read the bundle's .manifest"):
        parse_manifest(b"{", source="b.tar.gz")


ROOT = Path(__file__).resolve().parents[3]
FORMAT_MODULE = ROOT / "edgepolicy" / "bundle_format.py"


def test_no_other_module_knows_the_archive_or_its_reserved_file_names() -> None:
    # The tarball and the names `.manifest` / `.signatures.json` are the format's own: other
    # modules go through edgepolicy.bundle_format (docstrings and comments may name them).
    pattern = re.compile(r"""["'](\.manifest|\.signatures\.json)["']|^\s*import (tarfile|gzip)""")
    sources = [*ROOT.glob("edgepolicy/**/*.py"), *ROOT.glob("bundles/*.py")]
    offenders = []
    for path in [*sources, *ROOT.glob("webhook/*.py")]:
        if path == FORMAT_MODULE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
