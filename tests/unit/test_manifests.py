"""Reading manifests: documents, lists, lines, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepolicy.errors import InputError
from edgepolicy.manifests import field_key_lines, is_policy_object, load_paths, load_text

MULTI = """\
# a comment before the first document
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, creationTimestamp: 2020-01-01T00:00:00Z}
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
---
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: c
"""


def test_multi_document_yaml_with_list_expanded_and_lines() -> None:
    manifests = load_text(MULTI, "m.yaml")
    assert [(m.index, m.line, m.obj["metadata"]["name"]) for m in manifests] == [
        (0, 6, "a"),
        (1, 9, "b"),
        (2, 14, "c"),
    ]
    assert all(m.path == "m.yaml" for m in manifests)


def test_timestamps_stay_strings() -> None:
    (pod, *_) = load_text(MULTI, "m.yaml")
    assert pod.obj["metadata"]["creationTimestamp"] == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize("path", ["p.json", "P.JSON"])
def test_json_file_is_parsed_as_json(path: str) -> None:
    (only,) = load_text('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}', path)
    assert only.obj["kind"] == "Pod"
    assert only.line == 1
    with pytest.raises(InputError, match=f"{path}:1: invalid JSON"):
        load_text('{"apiVersion": "v1", "kind": "Pod",}', path)


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ("a: [1,\n  b\n", "bad.yaml", "bad.yaml:3: invalid YAML"),
        (
            "apiVersion: v1\nkind: Pod\n---\n- 1\n",
            "list.yaml",
            "list.yaml:4: expected a Kubernetes",
        ),
        ("kind: Pod\n", "nokind.yaml", "nokind.yaml:1: object has no apiVersion"),
        ("apiVersion: v1\nkind: 3\n", "k.yaml", "k.yaml:1: kind must be a string"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: 3}\n", "n.yaml", "metadata.name must be"),
        ("apiVersion: v1\nkind: Pod\nmetadata: []\n", "m.yaml", "metadata must be a mapping"),
        ("apiVersion: v1\nkind: X\nx: !!binary aGk=\n", "b.yaml", "field x has YAML type bytes"),
        ("{1: 2, apiVersion: v1, kind: X}", "i.yaml", "mapping key 1 must be a string"),
        ("apiVersion: v1\nkind: List\nitems: 3\n", "l.yaml", "List.items must be a list"),
        ('{"a":\n1,}', "bad.json", "bad.json:2: invalid JSON"),
        (
            "apiVersion: v1\nkind: X\nmetadata:\n  name: a\n  name: b\n",
            "d.yaml",
            "d.yaml:5: invalid YAML: key 'name' appears twice",
        ),
        ('{"apiVersion": "v1", "kind": "X", "n": NaN}', "nan.json", "NaN is not allowed"),
        (
            "apiVersion: v1\nkind: X\nx: !!float abc\n",
            "f.yaml",
            "f.yaml:3: invalid YAML: cannot read",
        ),
        (
            "apiVersion: v1\nkind: X\nx: !!int 0x_\n",
            "i.yaml",
            "i.yaml:3: invalid YAML: cannot read",
        ),
        (
            "apiVersion: v1\nkind: X\nx: " + "9" * 5000,
            "big.yaml",
            "big.yaml:3: .*Exceeds the limit",
        ),
        ('{"x": ' + "9" * 5000 + "}", "big.json", "big.json: invalid JSON: Exceeds the limit"),
        (
            '{"apiVersion": "v1", "kind": "X", "y": {"a": "\\ud800"}}',
            "s.json",
            "s.json:1: field y.a holds a lone surrogate",
        ),
        (
            '{"apiVersion": "v1", "kind": "X", "\\udc00": 1}',
            "k.json",
            "k.json:1: mapping key .* holds a lone surrogate",
        ),
        ("apiVersion: v1\nkind: X\nx: !!bool abc\n", "b.yaml", "b.yaml:3: invalid YAML: cannot"),
        ("apiVersion: v1\nkind: X\nx: !!timestamp x\n", "t.yaml", "t.yaml:3: invalid YAML: cannot"),
        ("apiVersion: v1\nkind: X\nx: !!map abc\n", "m.yaml", "m.yaml:1: invalid YAML: a value"),
        ("apiVersion: v1\nkind: X\nx: !!set [1]\n", "s.yaml", "s.yaml:1: invalid YAML: a value"),
    ],
)
def test_bad_input_names_file_line_and_problem(text: str, path: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected.replace("[", r"\[")) as caught:
        load_text(text, path)
    assert caught.value.path == path


def test_non_strict_skips_documents_that_are_not_objects() -> None:
    text = "on: push\n---\n- x\n---\napiVersion: v1\nkind: Pod\n"
    assert [m.obj["kind"] for m in load_text(text, "ci.yml", strict=False)] == ["Pod"]


def test_empty_and_comment_only_files_have_no_objects() -> None:
    assert load_text("", "e.yaml") == []
    assert load_text("# nothing\n---\n", "e.yaml") == []


def test_load_paths_walks_directories_sorted_and_reads_named_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n")
    (tmp_path / "a.json").write_text(
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}'
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    named = tmp_path / "named.txt"
    named.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: n}\n")
    manifests = load_paths([tmp_path / "sub", tmp_path / "a.json", named])
    assert [m.obj["metadata"]["name"] for m in manifests] == ["b", "a", "n"]
    assert [m.obj["metadata"]["name"] for m in load_paths([tmp_path])] == ["a", "b"]


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        load_paths([tmp_path / "missing.yaml"])


def test_undecodable_file_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"kind: \xff\n")
    with pytest.raises(InputError, match="cannot read file"):
        load_paths([bad])


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": "FinOpsPolicy"}, True),
        ({"apiVersion": "policy.apexlogic.com/v1", "kind": "ModelPolicy"}, True),
        ({"apiVersion": "other.example.com/v1alpha1", "kind": "FinOpsPolicy"}, False),
        ({"apiVersion": "policy.apexlogic.com/v1alpha1", "kind": "Deployment"}, False),
        ({"kind": "FinOpsPolicy"}, False),
    ],
)
def test_is_policy_object(obj: dict[str, str], expected: bool) -> None:
    assert is_policy_object(obj) is expected


def test_merge_keys_are_not_duplicates() -> None:
    text = "apiVersion: v1\nkind: X\nbase: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n"
    (only,) = load_text(text, "merge.yaml")
    assert only.obj["other"] == {"x": 1, "y": 2}


def test_alias_bombs_are_refused() -> None:
    text = 'apiVersion: v1\nkind: X\na: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    previous = "a"
    for name in "bcdefghij":
        text += f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
        previous = name
    with pytest.raises(InputError, match="expands to more than 1000000 values"):
        load_text(text, "lol.yaml")


def test_byte_order_mark_and_crlf_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"apiVersion": "v1", "kind": "Pod"}')
    (tmp_path / "crlf.yaml").write_bytes(b"\xef\xbb\xbfapiVersion: v1\r\nkind: Pod\r\n")
    assert [m.obj["kind"] for m in load_paths([tmp_path])] == ["Pod", "Pod"]


def _nested_yaml(depth: int) -> str:
    return "apiVersion: v1\nkind: X\nmetadata: {name: a}\nspec: " + "[" * depth + "]" * depth


def _nested_json(depth: int) -> str:
    return '{"apiVersion": "v1",\n"kind": "X",\n"spec": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [100, 600, 5000, 200_000])
def test_too_deep_yaml_is_refused_with_its_line(depth: int) -> None:
    with pytest.raises(InputError, match="nests more than 100 levels deep") as caught:
        load_text(_nested_yaml(depth), "deep.yaml")
    assert (caught.value.path, caught.value.line) == ("deep.yaml", 4)


@pytest.mark.parametrize("depth", [100, 2000, 200_000])
def test_too_deep_json_is_refused_with_its_line(depth: int) -> None:
    with pytest.raises(InputError, match="nests more than 100 levels deep") as caught:
        load_text(_nested_json(depth), "deep.json")
    assert (caught.value.path, caught.value.line) == ("deep.json", 3)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    (yaml_object,) = load_text(_nested_yaml(99), "ok.yaml")
    (json_object,) = load_text(_nested_json(99), "ok.json")
    assert yaml_object.obj["spec"] == json_object.obj["spec"]


@pytest.mark.parametrize(
    "text", ["apiVersion: v1\nkind: X\nx: &r [*r]\n", "apiVersion: v1\nkind: X\nx: &r {a: *r}\n"]
)
def test_recursive_alias_is_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"field x\[0\]|field x\.a") as caught:
        load_text(text, "alias.yaml")
    assert "recursive YAML alias" in str(caught.value)
    assert (caught.value.path, caught.value.line) == ("alias.yaml", 1)


def test_unacceptable_character_names_its_line() -> None:
    text = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: "é\x07b"\n'
    with pytest.raises(InputError, match=r"unacceptable character #x0007") as caught:
        load_text(text, "ctl.yaml")
    assert (caught.value.path, caught.value.line) == ("ctl.yaml", 4)
    assert "position" not in str(caught.value)


def test_hidden_files_and_directories_are_skipped_unless_named(tmp_path: Path) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\n"
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yaml").write_text("on: push\njobs: {}\n")
    (tmp_path / ".hidden.yaml").write_text(pod % "hidden")
    (tmp_path / "visible.yaml").write_text(pod % "visible")
    assert [m.obj["metadata"]["name"] for m in load_paths([tmp_path])] == ["visible"]
    named = load_paths([tmp_path / ".hidden.yaml"])
    assert [m.obj["metadata"]["name"] for m in named] == ["hidden"]


def test_a_file_reached_twice_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    pod = tmp_path / "sub" / "p.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    manifests = load_paths([pod, tmp_path, tmp_path / "sub" / ".." / "sub" / "p.yaml"])
    assert [(m.path, m.obj["metadata"]["name"]) for m in manifests] == [(str(pod), "p")]


def test_empty_path_is_an_input_error() -> None:
    with pytest.raises(InputError, match="empty path"):
        load_paths([""])


def test_broken_symlink_inside_a_directory_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="broken symbolic link") as caught:
        load_paths([tmp_path])
    assert caught.value.path == str(tmp_path / "dangling.yaml")
    with pytest.raises(InputError, match="broken symbolic link"):
        load_paths([tmp_path / "dangling.yaml"])


@pytest.mark.parametrize(
    "api_version",
    ["policy.apexlogic.io/v1alpha1", "v1alpha1", "policy.apexlogic.com", "policy.apexlogic.com/v1"],
)
@pytest.mark.parametrize("kind", ["FinOpsPolicy", "ModelPolicy"])
@pytest.mark.parametrize("strict", [True, False])
def test_policy_kind_with_another_api_version_is_refused(
    api_version: str, kind: str, strict: bool
) -> None:
    text = f"apiVersion: v1\nkind: Pod\n---\napiVersion: {api_version}\nkind: {kind}\n"
    expected = f"{kind} must have apiVersion policy.apexlogic.com/v1alpha1, got '{api_version}'"
    with pytest.raises(InputError, match=expected) as caught:
        load_text(text, "p.yaml", strict=strict)
    assert (caught.value.path, caught.value.line) == ("p.yaml", 4)


def test_field_key_lines_finds_a_field_and_the_keys_under_it() -> None:
    text = "# note\n---\nkind: X\nexpected:\n  a/b: {}\n\n  'c/d':\n    x: 1\nother: {}\n"
    assert field_key_lines(text, "t.yaml", "expected") == (4, {"a/b": 5, "c/d": 7})
    assert field_key_lines(text, "t.yaml", "other") == (9, {})
    assert field_key_lines(text, "t.yaml", "missing") == (None, {})
    assert field_key_lines("", "t.yaml", "expected") == (None, {})
    with pytest.raises(InputError, match=r"^t\.yaml: invalid YAML"):
        field_key_lines("expected: [\n", "t.yaml", "expected")
