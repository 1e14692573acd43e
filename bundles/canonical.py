"""OPA's content hash of bundle files, as its bundle signature verifier computes it.

OPA hashes "structured" files (``data.json``, ``data.yaml``/``.yml`` and ``.manifest``) over a
canonical JSON form, so that whitespace and key order do not matter, and every other file over
its raw bytes. The canonical form writes objects with keys in sorted order, no whitespace,
numbers exactly as they appear in the file, and strings escaped the way Go's ``encoding/json``
escapes them with HTML escaping switched off.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from edgepolicy.bundle_format import MANIFEST

_STRUCTURED_NAMES = frozenset({"data.json", "data.yaml", "data.yml", MANIFEST})
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


class _Number(str):
    """A JSON number kept as its literal text, as OPA's decoder (``UseNumber``) keeps it."""


def is_structured(name: str) -> bool:
    """Return whether OPA hashes the bundle file ``name`` over its canonical JSON form."""
    return posixpath.basename(name) in _STRUCTURED_NAMES


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _encode_string(text: str) -> str:
    out = ['"']
    for char in text:
        escaped = _SHORT_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            out.append("\ufffd")  # Go decodes a lone surrogate escape as U+FFFD
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _canonical(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _canonical(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _canonical(item, out)
        out.append("]")
    elif isinstance(value, _Number):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    else:
        out.append("null")


def canonical_json(content: bytes) -> bytes:
    """Return the canonical form OPA hashes for the JSON document ``content``.

    Raises:
        ValueError: ``content`` is not a single valid JSON document.
    """
    text = content.decode("utf-8-sig")
    value = json.loads(
        text, parse_int=_Number, parse_float=_Number, parse_constant=_reject_constant
    )
    out: list[str] = []
    _canonical(value, out)
    return "".join(out).encode("utf-8")


def file_digest(name: str, content: bytes) -> str:
    """Return the hex SHA-256 digest OPA expects for bundle file ``name`` with ``content``.

    Raises:
        ValueError: a structured file is not valid JSON.
    """
    payload = canonical_json(content) if is_structured(name) else content
    return hashlib.sha256(payload).hexdigest()
