"""OPA's canonical hashing of structured bundle files."""

from __future__ import annotations

import hashlib

import pytest
from edgepolicy.bundles.canonical import canonical_json, file_digest, is_structured

# Written by `opa build` v1.22.3 (HTML-escaped, key order of its own) with the digests it signed.
OPA_DATA_JSON = (
    b'{"edgepolicy":{"policies":{"finops":{"ns":{"p":{"s":"a\\u2028\\u003c\\u003e\\u0026\\b",'
    b'"x":1.50}}},"model":{}}}}\n'
)
OPA_DATA_DIGEST = "5cec65d7b68344a8b10a4cae7fe8340e231c0572d88ac96cefa95c3a62ab3a81"
OPA_MANIFEST = (
    b'{"revision":"abc","roots":["edgepolicy"],"rego_version":1,"metadata":{"commit":"abc"}}\n'
)
OPA_MANIFEST_DIGEST = "14fed4b068cc7d22c3fde021232bb06f9b2157c0254981c2858b5dbe0385afeb"


def test_digests_match_what_opa_build_signs() -> None:
    assert file_digest("data.json", OPA_DATA_JSON) == OPA_DATA_DIGEST
    assert file_digest(".manifest", OPA_MANIFEST) == OPA_MANIFEST_DIGEST


def test_canonical_form_sorts_keys_keeps_number_text_and_escapes_like_go() -> None:
    raw = b'{ "b": [1.50, 1e3, -0, true, null],\n "a": "x\\u0001\\t\\"<\\u00e9\\u2029" }'
    assert (
        canonical_json(raw)
        == '{"a":"x\\u0001\\t\\"<é\\u2029","b":[1.50,1e3,-0,true,null]}'.encode()
    )


def test_whitespace_and_key_order_do_not_change_the_digest() -> None:
    assert file_digest("a/data.json", b'{"x": 1, "y": [2]}') == file_digest(
        "a/data.json", b'{"y":[2],"x":1}'
    )


def test_a_changed_value_changes_the_digest() -> None:
    assert file_digest("data.json", b'{"x": 1}') != file_digest("data.json", b'{"x": 2}')


def test_other_files_are_hashed_as_raw_bytes() -> None:
    content = b"package x\n\nallow := true\n"
    assert not is_structured("policy/x.rego")
    assert file_digest("policy/x.rego", content) == hashlib.sha256(content).hexdigest()


def test_invalid_json_is_rejected() -> None:
    with pytest.raises(ValueError):
        file_digest("data.json", b'{"x": NaN}')
    with pytest.raises(ValueError):
        file_digest(".manifest", b"{")
