"""Build the decision input: an AdmissionReview as the API server sends it, plus caller context.

This is the one input builder. ``edgepolicy check`` wraps each manifest in the AdmissionReview
the webhook would receive for it; the webhook passes the review it received. Both then add the
same ``context`` (docs/decision-contract.md), so CI and admission ask OPA the same question.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from edgepolicy.errors import InputError
from edgepolicy.validated_policies import NO_POLICIES, ValidatedPolicies

ADMISSION_API_VERSION = "admission.k8s.io/v1"
# The operations an AdmissionReview can carry, with the kind of their ``options``.
_OPTIONS_KIND = {
    "CREATE": "CreateOptions",
    "UPDATE": "UpdateOptions",
    "DELETE": "DeleteOptions",
    "CONNECT": None,
}
OPERATIONS = frozenset(_OPTIONS_KIND)

# Resource names that English plural rules get wrong; every other kind follows the rules.
_IRREGULAR_RESOURCES: dict[str, str] = {"Endpoints": "endpoints"}

# Kinds that live outside namespaces, so they get no namespace.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "APIService",
        "CertificateSigningRequest",
        "PodSecurityPolicy",
        "VolumeAttachment",
        "CSIDriver",
        "CSINode",
    }
)


def resource_name(kind: str) -> str:
    """Return the plural resource name of ``kind`` (``Deployment`` → ``deployments``).

    Lower case plus English plural rules (``Ingress`` → ``ingresses``, ``FinOpsPolicy`` →
    ``finopspolicies``, ``Gateway`` → ``gateways``), except for a few irregular kinds.
    """
    if kind in _IRREGULAR_RESOURCES:
        return _IRREGULAR_RESOURCES[kind]
    lower = kind.lower()
    if not lower:
        return lower
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def group_version(api_version: str) -> tuple[str, str]:
    """Split ``apps/v1`` into ``("apps", "v1")`` and ``v1`` into ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def is_namespaced(kind: str) -> bool:
    """Tell whether objects of ``kind`` live in a namespace (unknown kinds are assumed to)."""
    return kind not in CLUSTER_SCOPED_KINDS


def admission_review(
    obj: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    old_object: Mapping[str, Any] | None = None,
    namespace_default: str = "default",
    uid: str | None = None,
    username: str = "edgepolicy",
    dry_run: bool = False,
) -> dict[str, Any]:
    """Return the ``admission.k8s.io/v1`` AdmissionReview the API server would send for ``obj``.

    Namespaced objects without ``metadata.namespace`` get ``namespace_default``, written into
    the object as the API server does before admission. For DELETE the object is sent as
    ``oldObject`` (unless ``old_object`` is given) and ``object`` is null. The input is not
    modified.

    Raises:
        InputError: ``operation`` is not CREATE, UPDATE, DELETE or CONNECT.
    """
    if operation not in OPERATIONS:
        raise InputError(f"operation must be one of {sorted(OPERATIONS)}, got {operation!r}")
    kind = str(obj.get("kind", ""))
    group, version = group_version(str(obj.get("apiVersion", "")))
    body = copy.deepcopy(dict(obj))
    metadata = body.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    body["metadata"] = metadata
    namespace = ""
    if is_namespaced(kind):
        namespace = str(metadata.get("namespace") or namespace_default)
        metadata["namespace"] = namespace
    group_version_kind = {"group": group, "version": version, "kind": kind}
    group_version_resource = {"group": group, "version": version, "resource": resource_name(kind)}
    old = copy.deepcopy(dict(old_object)) if old_object is not None else None
    new: dict[str, Any] | None = body
    if operation == "DELETE":
        old, new = (old if old is not None else body), None
    options_kind = _OPTIONS_KIND[operation]
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": group_version_kind,
        "resource": group_version_resource,
        "requestKind": dict(group_version_kind),
        "requestResource": dict(group_version_resource),
        "name": str(metadata.get("name", "")),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": username, "groups": ["system:authenticated"]},
        "object": new,
        "oldObject": old,
        "dryRun": dry_run,
        "options": (
            {"apiVersion": "meta.k8s.io/v1", "kind": options_kind} if options_kind else None
        ),
    }
    return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "request": request}


def decision_input(
    review: Mapping[str, Any],
    *,
    policies: ValidatedPolicies = NO_POLICIES,
    workloads: Iterable[Mapping[str, Any]] = (),
    models: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the OPA input: ``review`` with the trusted ``context`` added.

    ``policies`` are the policies known besides those in data (they win over data for the
    same namespace/name), as :func:`edgepolicy.validated_policies.validate_policies` returns
    them: the only way a policy reaches the context (docs/decision-contract.md). ``workloads``
    are the other workloads the caller knows (for HPA targets), ``models`` the verified model
    facts by container name; omitted when None ("nothing verified"). Any ``context`` already in
    ``review`` is replaced: only trusted callers set it.
    """
    context: dict[str, Any] = {**policies.context(), "workloads": list(workloads)}
    if models is not None:
        context["models"] = dict(models)
    document = {key: value for key, value in review.items() if key != "context"}
    document["context"] = context
    return document
