"""What a ModelPolicy's schema cannot say about its trust: keys, chains, expressions, roots.

The CRD checks shapes (a ``publicKeys`` entry starts with ``-----BEGIN PUBLIC KEY-----``); this
module checks that each entry is usable as the verifier reads it, so a policy whose trust cannot
work is reported by ``policy.invalid`` naming the entry, not found out at the first signature.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from edgepolicy.models.signatures import parse_trusted_chain, parse_trusted_key

FieldPath = tuple[str | int, ...]


def signature_problems(spec: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """Return the unusable entries of ``spec.signature`` (a schema-valid ModelPolicy spec) with
    their paths and messages; [] when every entry can be used. Raises nothing."""
    signature = spec.get("signature")
    if not isinstance(signature, Mapping):
        return []
    base: FieldPath = ("spec", "signature")
    problems: list[tuple[FieldPath, str]] = []
    for index, pem in enumerate(_list(signature, "publicKeys")):
        key, problem = parse_trusted_key(pem) if isinstance(pem, str) else (True, "")
        if key is None:
            problems.append(
                (
                    (*base, "publicKeys", index),
                    f"must be a PEM elliptic-curve public key (P-256, P-384 or P-521): "
                    f"it {problem}",
                )
            )
    for index, pem in enumerate(_list(signature, "certificateChains")):
        if isinstance(pem, str) and not parse_trusted_chain(pem)[0]:
            problems.append(
                (
                    (*base, "certificateChains", index),
                    "must be PEM certificates, but none could be read",
                )
            )
    for index, identity in enumerate(_list(signature, "identities")):
        pattern = identity.get("subjectRegExp") if isinstance(identity, Mapping) else None
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as error:
                problems.append(
                    (
                        (*base, "identities", index, "subjectRegExp"),
                        f"must be a regular expression, got {json.dumps(pattern)}: {error}",
                    )
                )
    root = signature.get("trustedRoot")
    if isinstance(root, str):
        try:
            parsed = json.loads(root)
        except ValueError as error:
            parsed = error
        if not isinstance(parsed, dict):
            detail = f"not JSON ({parsed})" if isinstance(parsed, ValueError) else "not an object"
            problems.append(
                ((*base, "trustedRoot"), f"must be a Sigstore trusted_root.json, got {detail}")
            )
    return problems


def _list(signature: Mapping[str, Any], name: str) -> list[Any]:
    value = signature.get(name)
    return value if isinstance(value, list) else []
