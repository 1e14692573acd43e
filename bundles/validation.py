"""Validate a bundle before it is written: names, policy objects, and the repository's Rego.

Policy names are checked as the Kubernetes API server checks them, and every policy object
against its CRD (:mod:`edgepolicy.validated_policies`, once, here): an invalid policy fails the
build, since a malformed policy must never reach a cluster. The bundle's data then holds the
validator's output (docs/decision-contract.md).

The unsigned bundle archive is loaded into a local ``opa run --server`` exactly as a sidecar
would load it (so the repository's Rego must compile together with the library and stay under
the bundle roots). Repository Rego may add findings under ``data.edgepolicy.rules``
(docs/decision-contract.md). So that such a rule cannot break the decision document (which would
make admission fail closed for every object it touches), the build also evaluates the decision
and the rules' findings on probe inputs: the policy objects (with the validator's output as
context, as the webhook sends it) and a minimal Deployment in each policy's namespace carrying
its ``matchLabels``. OPA errors and findings of the wrong shape fail the build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepolicy.decision import Decision, Finding
from edgepolicy.errors import InputError, OpaError
from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.manifests import Manifest
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OpaProcess
from edgepolicy.policy_data import policy_key
from edgepolicy.validated_policies import NO_POLICIES, ValidatedPolicies
from edgepolicy.validated_policies import validate_policies as check_policies

RULES_PATH = "edgepolicy/rules"
PROBE_NAME = "edgepolicy-build-probe"
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253


def check_names(kind: str, namespace: str, name: str) -> None:
    """Check a policy's name (a DNS-1123 subdomain) and namespace (a DNS-1123 label).

    These are the rules the API server applies to custom resources and namespaces.

    Raises:
        InputError: a name does not follow them (names the object and the field).
    """
    if len(name) > _SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise InputError(
            f"{kind} {namespace}/{name}: metadata.name must be a DNS-1123 subdomain (at most "
            f"{_SUBDOMAIN_MAX} lowercase letters, digits, '-' and '.', starting and ending with "
            f"a letter or digit), got {name!r}"
        )
    if len(namespace) > _LABEL_MAX or not _DNS1123_LABEL.fullmatch(namespace):
        raise InputError(
            f"{kind} {namespace}/{name}: metadata.namespace must be a DNS-1123 label (at most "
            f"{_LABEL_MAX} lowercase letters, digits and '-', starting and ending with a letter "
            f"or digit), got {namespace!r}"
        )


def validate_policies(policies: Sequence[Manifest]) -> ValidatedPolicies:
    """Validate every policy object of ``policies`` (named, see :func:`check_names`) against its
    CRD, once.

    Raises:
        InputError: a policy object is malformed (names the file, line, object and every
            field at fault).
    """
    validated = NO_POLICIES
    for manifest in policies:
        one = check_policies([manifest.obj])
        for invalid in one.invalid:
            details = "; ".join(
                f"{error.field} {error.message}" if error.field else error.message
                for error in invalid.errors
            )
            raise InputError(
                f"{invalid.kind} {invalid.namespace}/{invalid.name} is invalid: {details}",
                path=manifest.path,
                line=manifest.line,
            )
        validated = validated.replaced_by(one)
    return validated


def validate_bundle(
    opa: Path, bundle: Path, policies: Sequence[Manifest], validated: ValidatedPolicies
) -> None:
    """Load the bundle archive ``bundle`` into a real OPA and check it with probe inputs
    (``validated`` is :func:`validate_policies`'s output for ``policies``).

    Raises:
        OpaError: OPA cannot load the bundle (for example Rego that does not compile or a
            package outside the bundle roots; OPA's message is included), or the repository's
            Rego errors or yields findings of the wrong shape on a probe input (the message
            names the rule package and the probe).
    """
    with OpaProcess(opa, bundles=[bundle]) as server:
        client = OpaClient(server.url, timeout=30.0, maxsize=1)
        try:
            for manifest in policies:
                namespace, name = policy_key(manifest.obj)
                what = f"{manifest.obj.get('kind')} {namespace}/{name}"
                try:
                    _probe(client, manifest.obj, what, validated)
                except OpaError as error:
                    raise OpaError(f"{manifest.path}: {error}") from error
            for deployment in probe_deployments(policies):
                namespace = deployment["metadata"]["namespace"]
                what = f"a probe Deployment {namespace}/{PROBE_NAME}"
                _probe(client, deployment, what, validated)
        finally:
            client.close()


def _probe(
    client: OpaClient, obj: Mapping[str, Any], what: str, validated: ValidatedPolicies
) -> Decision:
    """Return the decision on ``obj`` after checking the shape of every rule's findings.

    Raises:
        OpaError: OPA errors, or a rule's findings or the decision are of the wrong shape
            (``what`` names ``obj`` in the message).
    """
    doc = decision_input(admission_review(obj), policies=validated)
    try:
        rules = client.query(RULES_PATH, doc)
    except OpaError as error:
        raise OpaError(f"evaluating {what}: {error}") from error
    try:
        _check_findings(rules)
    except OpaError as error:
        raise OpaError(
            f"evaluating {what}: a rule yields a finding the decision cannot carry: {error}; "
            "findings need string rule, policy and message and an optional string container "
            "(docs/decision-contract.md)"
        ) from error
    try:
        return client.decide(doc)
    except OpaError as error:
        raise OpaError(f"evaluating {what}: {error}") from error


def _check_findings(rules: Any) -> None:
    """Check every ``findings`` of the packages under ``data.edgepolicy.rules``.

    Raises:
        OpaError: a ``findings`` document is not a set of well-formed findings.
    """
    if not isinstance(rules, Mapping):
        return
    for package in sorted(rules):
        document = rules[package]
        if not isinstance(document, Mapping) or "findings" not in document:
            continue
        where = f"data.edgepolicy.rules.{package}.findings"
        findings = document["findings"]
        if not isinstance(findings, list):
            raise OpaError(f"{where}: expected a set of findings, got {type(findings).__name__}")
        for position, finding in enumerate(findings):
            # The decision adds the action; everything else must already be right.
            with_action = {**finding, "action": "deny"} if isinstance(finding, Mapping) else finding
            Finding.from_document(with_action, f"{where}[{position}]")


def probe_deployments(policies: Sequence[Manifest]) -> list[dict[str, Any]]:
    """Return one minimal Deployment per policy namespace and ``matchLabels`` (``default``
    without policies), to evaluate the repository's rules on a workload."""
    probes: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    for manifest in policies:
        namespace, _ = policy_key(manifest.obj)
        labels = _match_labels(manifest.obj)
        probes.setdefault(
            (namespace, tuple(sorted(labels.items()))), _deployment(namespace, labels)
        )
    return list(probes.values()) or [_deployment("default", {})]


def _match_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    spec = obj.get("spec")
    selector = spec.get("targetWorkloadSelector") if isinstance(spec, Mapping) else None
    labels = selector.get("matchLabels") if isinstance(selector, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def _deployment(namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": PROBE_NAME, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "probe", "image": "registry.invalid/probe:1"}]},
            },
        },
    }
