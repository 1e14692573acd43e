"""The decision OPA returns, as typed values (shape: docs/decision-contract.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgepolicy.errors import OpaError

ACTIONS = frozenset({"deny", "warn", "dryrun"})


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one object: which rule, which policy, what to change."""

    rule: str
    policy: str
    message: str
    action: str
    container: str | None = None

    @classmethod
    def from_document(cls, doc: Any, where: str) -> Finding:
        """Build a finding from its JSON form; ``where`` names it in errors.

        Raises:
            OpaError: a field is missing or of the wrong type, or the action is unknown.
        """
        if not isinstance(doc, Mapping):
            raise OpaError(f"decision {where}: expected an object, got {type(doc).__name__}")
        rule = _string(doc, "rule", where)
        message = _string(doc, "message", where)
        action = _string(doc, "action", where)
        if action not in ACTIONS:
            raise OpaError(
                f"decision {where}.action: expected one of {sorted(ACTIONS)}, got {action!r}"
            )
        policy = doc.get("policy", "")
        if not isinstance(policy, str):
            raise OpaError(f"decision {where}.policy: expected a string, got {policy!r}")
        container = doc.get("container")
        if container is not None and not isinstance(container, str):
            raise OpaError(f"decision {where}.container: expected a string, got {container!r}")
        return cls(rule=rule, policy=policy, message=message, action=action, container=container)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (``container`` only when set)."""
        doc: dict[str, Any] = {
            "rule": self.rule,
            "policy": self.policy,
            "message": self.message,
            "action": self.action,
        }
        if self.container is not None:
            doc["container"] = self.container
        return doc


@dataclass(frozen=True)
class Decision:
    """OPA's answer for one admission request.

    ``allowed`` is true exactly when ``violations`` (the ``deny`` findings) is empty.
    """

    allowed: bool
    violations: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()
    dryrun: tuple[Finding, ...] = ()
    patches: tuple[dict[str, Any], ...] = ()
    policies: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Decision:
        """Build a decision from ``data.edgepolicy.admission.decision``.

        Absent lists count as empty. An ``allowed`` that disagrees with the violations is
        rejected rather than trusted, so a broken policy can never admit a denied object.

        Raises:
            OpaError: the document is not of the contract's shape.
        """
        if not isinstance(doc, Mapping):
            raise OpaError(f"decision: expected an object, got {type(doc).__name__}")
        allowed = doc.get("allowed")
        if not isinstance(allowed, bool):
            raise OpaError(f"decision.allowed: expected true or false, got {allowed!r}")
        violations = _findings(doc, "violations")
        if allowed == bool(violations):
            raise OpaError(
                f"decision.allowed is {str(allowed).lower()} but it has "
                f"{len(violations)} violation(s); allowed must be true exactly when there are none"
            )
        patches = _list(doc, "patches")
        for position, patch in enumerate(patches):
            if not isinstance(patch, Mapping) or not isinstance(patch.get("op"), str):
                raise OpaError(f"decision.patches[{position}]: expected a JSONPatch operation")
        policies = _list(doc, "policies")
        if not all(isinstance(name, str) for name in policies):
            raise OpaError("decision.policies: expected a list of strings")
        return cls(
            allowed=allowed,
            violations=violations,
            warnings=_findings(doc, "warnings"),
            dryrun=_findings(doc, "dryrun"),
            patches=tuple(dict(patch) for patch in patches),
            policies=tuple(policies),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the decision document form (the contract's JSON)."""
        return {
            "allowed": self.allowed,
            "violations": [finding.to_dict() for finding in self.violations],
            "warnings": [finding.to_dict() for finding in self.warnings],
            "dryrun": [finding.to_dict() for finding in self.dryrun],
            "patches": [dict(patch) for patch in self.patches],
            "policies": list(self.policies),
        }


def _string(doc: Mapping[str, Any], field: str, where: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str):
        raise OpaError(f"decision {where}.{field}: expected a string, got {value!r}")
    return value


def _list(doc: Mapping[str, Any], field: str) -> Sequence[Any]:
    value = doc.get(field, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise OpaError(f"decision.{field}: expected a list, got {type(value).__name__}")
    return value


def _findings(doc: Mapping[str, Any], field: str) -> tuple[Finding, ...]:
    return tuple(
        Finding.from_document(item, f"{field}[{position}]")
        for position, item in enumerate(_list(doc, field))
    )
