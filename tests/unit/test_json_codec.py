"""The fast JSON encoder gives the same JSON values as the standard library."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgepolicy import json_codec


@pytest.mark.parametrize(
    "document",
    [
        {"b": [1, 2.5, None, True], "a": {"é": "ü"}},
        {"big": 10**30, "negative": -(2**70)},  # beyond 64 bits: the standard encoder
        {1: "non-string key"},
        {"lone surrogate": "\ud800"},
    ],
)
def test_same_json_value_as_the_standard_library(document: Any) -> None:
    encoded = json_codec.dumps(document)
    assert json.loads(encoded) == json.loads(json.dumps(document))


def test_compact_and_optionally_sorted() -> None:
    assert json_codec.dumps({"b": 1, "a": [1, 2]}) == b'{"b":1,"a":[1,2]}'
    assert json_codec.dumps({"b": 1, "a": 10**30}, sort_keys=True) == (
        b'{"a":1000000000000000000000000000000,"b":1}'
    )


def test_values_json_cannot_hold_are_refused() -> None:
    with pytest.raises(TypeError):
        json_codec.dumps({"a": object()})
