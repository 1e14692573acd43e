"""Decision documents: the contract's shape is enforced, broken answers are refused."""

from __future__ import annotations

from typing import Any

import pytest

from edgepolicy.decision import Decision, Finding
from edgepolicy.errors import OpaError

DENY = {
    "rule": "finops.cpu",
    "policy": "ai/p",
    "message": "too much",
    "action": "deny",
    "container": "server",
}
WARN = {"rule": "finops.memory", "policy": "ai/p", "message": "a lot", "action": "warn"}


def test_full_document_round_trips() -> None:
    doc = {
        "allowed": False,
        "violations": [DENY],
        "warnings": [WARN],
        "dryrun": [],
        "patches": [{"op": "add", "path": "/metadata/labels/x", "value": "y"}],
        "policies": ["ai/p"],
    }
    decision = Decision.from_document(doc)
    assert decision.violations == (Finding("finops.cpu", "ai/p", "too much", "deny", "server"),)
    assert decision.warnings[0].container is None
    assert decision.to_dict() == doc


def test_delete_answer_with_only_allowed_is_accepted() -> None:
    assert Decision.from_document({"allowed": True}) == Decision(allowed=True)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([], "expected an object"),
        ({}, "decision.allowed: expected true or false"),
        ({"allowed": "yes"}, "decision.allowed"),
        ({"allowed": True, "violations": [DENY]}, "allowed is true but it has 1 violation"),
        ({"allowed": False}, "allowed is false but it has 0 violation"),
        ({"allowed": True, "warnings": {}}, "decision.warnings: expected a list"),
        ({"allowed": True, "warnings": [{**WARN, "action": "block"}]}, "warnings\\[0\\].action"),
        ({"allowed": True, "warnings": [{**WARN, "rule": 1}]}, "warnings\\[0\\].rule"),
        ({"allowed": True, "warnings": [{**WARN, "policy": 1}]}, "warnings\\[0\\].policy"),
        ({"allowed": True, "warnings": [{**WARN, "container": 1}]}, "warnings\\[0\\].container"),
        ({"allowed": True, "warnings": ["x"]}, "warnings\\[0\\]: expected an object"),
        ({"allowed": True, "patches": [{"path": "/x"}]}, "patches\\[0\\]"),
        ({"allowed": True, "policies": [1]}, "decision.policies"),
    ],
)
def test_malformed_documents_are_refused(doc: Any, expected: str) -> None:
    with pytest.raises(OpaError, match=expected):
        Decision.from_document(doc)


def test_decision_is_frozen() -> None:
    decision = Decision(allowed=True)
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]
