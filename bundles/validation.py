"""Validate a bundle's policy objects with the real OPA and the library's ``policy.invalid`` rule.

The unsigned bundle archive is loaded into a local ``opa run --server`` exactly as a sidecar
would load it (so the repository's Rego must compile together with the library and stay under
the bundle roots), then every policy object is sent through the decision document as the
webhook would see it. Any ``policy.invalid`` finding, whatever its enforcement action, fails the
build: a malformed policy must never reach a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgepolicy.errors import InputError, OpaError
from edgepolicy.manifests import Manifest
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_server import LocalOpa
from edgepolicy.policy_data import policy_key
from edgepolicy.review import admission_review, decision_input

INVALID_RULE = "policy.invalid"


def validate_bundle(opa: Path, bundle: Path, policies: Sequence[Manifest]) -> None:
    """Load the bundle archive ``bundle`` into a real OPA and check every object of ``policies``.

    Raises:
        InputError: a policy object is malformed (names the file, line, object and field).
        OpaError: OPA cannot load the bundle (for example Rego that does not compile or a
            package outside the bundle roots; OPA's message is included).
    """
    with LocalOpa(opa, bundles=[bundle]) as server:
        client = OpaClient(server.url, timeout=30.0, maxsize=1)
        try:
            for manifest in policies:
                _check(client, manifest)
        finally:
            client.close()


def _check(client: OpaClient, manifest: Manifest) -> None:
    namespace, name = policy_key(manifest.obj)
    review = admission_review(manifest.obj)
    try:
        decision = client.decide(decision_input(review))
    except OpaError as error:
        raise OpaError(f"{manifest.path}: validating {namespace}/{name}: {error}") from error
    findings = [
        finding
        for finding in (*decision.violations, *decision.warnings, *decision.dryrun)
        if finding.rule == INVALID_RULE
    ]
    if findings:
        details = "; ".join(finding.message for finding in findings)
        raise InputError(
            f"{manifest.obj.get('kind')} {namespace}/{name} is invalid: {details}",
            path=manifest.path,
            line=manifest.line,
        )
