"""The shipped Rego library location."""

from edgepolicy.library import library_path


def test_library_path_is_the_rego_directory() -> None:
    path = library_path()
    assert path.is_dir()
    assert path.name == "rego"
    assert any(path.rglob("*.rego"))
