"""Merging --data files."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepolicy.data_files import load_data_files
from edgepolicy.errors import InputError, UsageError


def test_files_merge_at_the_root(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("edgepolicy:\n  settings:\n    enforcementActions: {finops.cpu: warn}\n")
    second = tmp_path / "b.json"
    second.write_text('{"edgepolicy": {"settings": {"gpuResourceNames": ["x.com/gpu"]}}, "o": 1}')
    assert load_data_files([first, second]) == {
        "edgepolicy": {
            "settings": {
                "enforcementActions": {"finops.cpu": "warn"},
                "gpuResourceNames": ["x.com/gpu"],
            }
        },
        "o": 1,
    }


def test_no_files_is_empty_data() -> None:
    assert load_data_files([]) == {}


def test_empty_yaml_file_adds_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert load_data_files([empty]) == {}


def test_timestamps_stay_strings(tmp_path: Path) -> None:
    dated = tmp_path / "dated.yaml"
    dated.write_text("since: 2026-01-01\n")
    assert load_data_files([dated]) == {"since": "2026-01-01"}


def test_conflict_names_both_files_and_the_path(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("edgepolicy: {settings: {enforcementActions: {finops.cpu: warn}}}\n")
    second = tmp_path / "b.yaml"
    second.write_text("edgepolicy: {settings: {enforcementActions: {finops.cpu: deny}}}\n")
    with pytest.raises(InputError) as caught:
        load_data_files([first, second])
    message = str(caught.value)
    assert message.startswith(f"{second}: conflicting values at ")
    assert "data.edgepolicy.settings.enforcementActions.finops.cpu" in message
    assert f"already set by {first}" in message


def test_conflict_names_the_file_that_added_the_value_under_a_shared_object(
    tmp_path: Path,
) -> None:
    files = [tmp_path / name for name in ("a.yaml", "b.yaml", "c.yaml")]
    files[0].write_text("s: {x: 1}\n")
    files[1].write_text("s: {y: {z: 1}}\n")
    files[2].write_text("s: {y: {z: 2}}\n")
    with pytest.raises(InputError) as caught:
        load_data_files(files)
    assert str(caught.value) == (
        f"{files[2]}: conflicting values at data.s.y.z: already set by {files[1]}"
    )


def test_object_replaced_by_a_value_is_a_conflict(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("edgepolicy: {settings: {a: 1}}\n")
    second = tmp_path / "b.yaml"
    second.write_text("edgepolicy: {settings: 3}\n")
    with pytest.raises(InputError, match="conflicting values at data.edgepolicy.settings"):
        load_data_files([first, second])


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("list.yaml", "- 1\n", "must hold a mapping"),
        ("bad.yaml", "a: [1\n", "bad.yaml:2: invalid YAML"),
        ("bad.json", '{"a": 1,\n}', "bad.json:2: invalid JSON"),
        ("bin.yaml", "a: !!binary aGk=\n", "field a has YAML type bytes"),
        ("dup.yaml", "a: 1\na: 2\n", "dup.yaml:2: invalid YAML: key 'a' appears twice"),
        ("alias.yaml", "a: 1\nx: &r [*r]\n", "alias.yaml:1: field x.*recursive YAML alias"),
        ("deep.yaml", "a:\n  " + "[" * 5000 + "]" * 5000, "deep.yaml:2: .*nests more than 100"),
        ("deep.json", '{"a":\n' + "[" * 2000 + "]" * 2000 + "}", "deep.json:2: .*nests more"),
        ("ctl.yaml", 'a: 1\nb: "\x07"\n', "ctl.yaml:2: invalid YAML: unacceptable character"),
        ("two.yaml", "a: 1\n---\nb: 2\n", "two.yaml:3: .*one YAML document"),
        ("nan.json", '{"a": NaN}', "nan.json.*NaN is not allowed"),
    ],
)
def test_bad_files_are_input_errors(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=expected):
        load_data_files([path])


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="missing.yaml: no such data file"):
        load_data_files([tmp_path / "missing.yaml"])


@pytest.mark.parametrize(
    "text",
    [
        "edgepolicy:\n  policies:\n    validated: true\n    finops: {}\n",
        "edgepolicy: [policies]\n",
    ],
)
def test_data_files_cannot_carry_policies_past_the_validator(tmp_path: Path, text: str) -> None:
    """Policies reach a decision only as the validator's output (validated once, when they
    enter), so a data file setting data.edgepolicy.policies (say, marked validated) is refused
    for check and verify as for serve."""
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=r"data\.edgepolicy(\.policies| must be a mapping)") as e:
        load_data_files([path])
    assert "--" not in str(e.value)  # the library names no flag: the CLI adds --data
