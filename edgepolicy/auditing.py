"""Decide what is stored in the cluster against the current policies: the engine of
``edgepolicy audit``.

Each stored workload and HPA is wrapped by the one input builder (:mod:`edgepolicy.input_builder`)
in the AdmissionReview the API server would send if the object were written again unchanged: an
UPDATE whose ``object`` and ``oldObject`` are both the stored object. The rules judge such an
UPDATE exactly as a CREATE, except that an object already being deleted (only its finalizers
change) is left alone, as admission leaves it. The context is the
webhook's: the FinOpsPolicies of the object's namespace, and the HPAs scaling a workload or the
workload an HPA scales, found among the listed objects (:class:`WorkloadIndex`, as ``check``
finds them). The answers are the ``check`` report (:class:`CheckReport`), so every ``--output``
format renders an audit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from edgepolicy.checking import CheckReport, CheckResult, WorkloadIndex
from edgepolicy.cluster_inventory import stored_path
from edgepolicy.decision import Decision
from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.manifests import Manifest
from edgepolicy.policy_data import policy_key
from edgepolicy.validated_policies import NO_POLICIES, ValidatedPolicies, validate_policies

AUDIT_USERNAME = "edgepolicy-audit"
_PARALLEL_REQUESTS = 4

Decide = Callable[[Mapping[str, Any]], Decision]


def audit_input(
    obj: Mapping[str, Any],
    *,
    policies: ValidatedPolicies,
    workloads: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """Return the decision input for the stored ``obj``: the no-op UPDATE review (``object``
    and ``oldObject`` both ``obj``) with ``policies`` and ``workloads`` as its context."""
    review = admission_review(obj, operation="UPDATE", old_object=obj, username=AUDIT_USERNAME)
    return decision_input(review, policies=policies, workloads=workloads)


def policies_by_namespace(
    policies: Iterable[Mapping[str, Any]],
) -> dict[str, list[Mapping[str, Any]]]:
    """Group policy objects by namespace; a later object replaces an earlier one of the same
    kind, namespace and name (cluster objects are given last: they win over files).

    Raises:
        InputError: a policy object has no name.
    """
    latest: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for policy in policies:
        namespace, name = policy_key(policy)
        latest[(str(policy.get("kind")), namespace, name)] = policy
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for (_, namespace, _), policy in sorted(latest.items(), key=lambda item: item[0]):
        grouped.setdefault(namespace, []).append(policy)
    return grouped


def audit_objects(
    objects: Sequence[Mapping[str, Any]],
    *,
    policies: Iterable[Mapping[str, Any]],
    decide: Decide,
) -> CheckReport:
    """Decide every stored object in ``objects`` (listed workloads and HPAs) with ``decide``
    (an :meth:`OpaClient.decide`), in the order of namespace, kind and name.

    Raises:
        InputError: a policy object has no name.
        OpaError: OPA returned an unusable answer or stopped answering.
    """
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    grouped = {
        namespace: validate_policies(group, namespace_default=namespace)
        for namespace, group in policies_by_namespace(policies).items()
    }
    ordered = sorted(objects, key=_order)
    index = WorkloadIndex(ordered)
    inputs = [
        audit_input(
            obj,
            policies=grouped.get(_namespace_of(obj), NO_POLICIES),
            workloads=index.related(obj),
        )
        for obj in ordered
    ]

    def timed(document: Mapping[str, Any]) -> tuple[Decision, float]:
        begin = time.perf_counter()
        decision = decide(document)
        return decision, time.perf_counter() - begin

    with ThreadPoolExecutor(max_workers=_PARALLEL_REQUESTS) as pool:
        answers = list(pool.map(timed, inputs))
    results = tuple(
        CheckResult(
            Manifest(stored_path(obj).lstrip("/"), 0, None, dict(obj)),
            _namespace_of(obj),
            decision,
            seconds=seconds,
        )
        for obj, (decision, seconds) in zip(ordered, answers, strict=True)
    )
    return CheckReport(results, started_at=started_at, seconds=time.perf_counter() - started)


def _order(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(obj.get("kind")), str(metadata.get("name")))


def _namespace_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("namespace") or "") if isinstance(metadata, Mapping) else ""
