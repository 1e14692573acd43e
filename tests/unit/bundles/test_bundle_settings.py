"""The repository's settings file."""

from __future__ import annotations

import pytest
from edgepolicy.bundles.settings import parse_settings

from edgepolicy.errors import InputError


def test_valid_settings_are_returned() -> None:
    content = b"enforcementActions:\n  finops.cpu: warn\ngpuResourceNames: [example.com/tpu]\n"
    assert parse_settings(content) == {
        "enforcementActions": {"finops.cpu": "warn"},
        "gpuResourceNames": ["example.com/tpu"],
    }
    assert parse_settings(b"") == {}
    assert parse_settings(b"---\n") == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"enforcementAction: {}\n", "unknown setting 'enforcementAction'"),
        (
            b"enforcementActions:\n  finops.cpu: block\n",
            "enforcementActions.finops.cpu must be one",
        ),
        (b"enforcementActions: [warn]\n", "enforcementActions must be a mapping"),
        (b"gpuResourceNames: nvidia.com/gpu\n", "gpuResourceNames must be a list"),
        (b"- a\n", "expected a mapping"),
        (b"a: [\n", "invalid YAML"),
        (b"enforcementActions:\n  x: warn\n  x: deny\n", "key 'x' appears twice"),
        (b"[" * 20000, "nests more than 100 levels deep"),
        (b"gpuResourceNames: []\n---\ngpuResourceNames: []\n", "expected one document"),
        (b"\xff", "not UTF-8 text"),
    ],
)
def test_malformed_settings_name_the_file_and_field(content: bytes, message: str) -> None:
    with pytest.raises(InputError, match=r"^edgepolicy-settings\.yaml:(\d+:)? ") as error:
        parse_settings(content)
    assert message in str(error.value)
