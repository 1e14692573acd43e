"""Builders of decisions and AdmissionReviews for the webhook's unit tests."""

from __future__ import annotations

from typing import Any

from edgepolicy.decision import Decision, Finding


def finding(rule: str, action: str = "deny", container: str | None = None) -> Finding:
    """A finding of ``rule`` from policy ``ai/budget``."""
    return Finding(
        rule=rule,
        policy="ai/budget",
        message=f"{rule} is over the limit; lower it",
        action=action,
        container=container,
    )


def decision(
    *,
    violations: tuple[Finding, ...] = (),
    warnings: tuple[Finding, ...] = (),
    dryrun: tuple[Finding, ...] = (),
    patches: tuple[dict[str, Any], ...] = (),
    policies: tuple[str, ...] = ("ai/budget",),
) -> Decision:
    """A decision with the given findings (allowed exactly when there are no violations)."""
    return Decision(
        allowed=not violations,
        violations=violations,
        warnings=warnings,
        dryrun=dryrun,
        patches=patches,
        policies=policies,
    )


def review(
    operation: str = "CREATE",
    *,
    kind: str = "Deployment",
    obj: dict[str, Any] | None = None,
    namespace: str = "ai",
) -> dict[str, Any]:
    """An AdmissionReview request as the API server sends it."""
    body = (
        obj
        if obj is not None
        else {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": "web", "namespace": namespace},
        }
    )
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f1c-uid",
            "kind": {"group": "apps", "version": "v1", "kind": kind},
            "resource": {"group": "apps", "version": "v1", "resource": kind.lower() + "s"},
            "namespace": namespace,
            "name": "web",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": None if operation == "DELETE" else body,
            "oldObject": body if operation in ("UPDATE", "DELETE") else None,
        },
    }
