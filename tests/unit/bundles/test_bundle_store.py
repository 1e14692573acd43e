"""The bundle store's reads: never outside the served folder, even through a link made after the
path was checked (the HTTP tests in test_bundle_service_http.py cover the checks themselves)."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgepolicy.bundles.store import BundleStore


def test_a_folder_swapped_for_a_link_out_after_the_check_is_not_read_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "bundles"
    (root / "team").mkdir(parents=True)
    (root / "team" / "edge.tar.gz").write_bytes(b"inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "edge.tar.gz").write_bytes(b"outside the served folder")
    store = BundleStore(root)
    found = store.get("/team/edge.tar.gz")
    assert found is not None and found.content == b"inside"
    checked = store.locate

    def check_then_swap(url_path: str) -> Path:
        located = checked(url_path)  # the race: the folder becomes a link out right after
        (root / "team").rename(root / "moved")
        (root / "team").symlink_to(outside, target_is_directory=True)
        return located

    monkeypatch.setattr(store, "locate", check_then_swap)
    assert store.get("/team/edge.tar.gz") is None


def test_a_file_swapped_for_a_link_out_after_the_check_is_not_read_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "bundles"
    root.mkdir()
    (root / "edge.tar.gz").write_bytes(b"inside")
    (tmp_path / "secret").write_bytes(b"outside the served folder")
    store = BundleStore(root)
    checked = store.locate

    def check_then_swap(url_path: str) -> Path:
        located = checked(url_path)
        (root / "edge.tar.gz").unlink()
        (root / "edge.tar.gz").symlink_to(tmp_path / "secret")
        return located

    monkeypatch.setattr(store, "locate", check_then_swap)
    assert store.get("/edge.tar.gz") is None
