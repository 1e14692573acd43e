"""Write an audit run's results into the cluster through the one Kubernetes client: each
FinOpsPolicy's ``status`` (through the status subresource) and an Event on each offending
object, counted rather than repeated (documents built by :mod:`edgepolicy.audit_records`).

A write that fails (the policy was deleted meanwhile, the API server refused it) is reported in
the run's summary and the rest of the run goes on: one bad object never hides the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from edgepolicy.audit_records import (
    DEFAULT_VIOLATIONS_LIMIT,
    AuditViolation,
    event_name,
    new_event,
    policy_statuses,
    repeated_event,
)
from edgepolicy.cluster_inventory import FINOPS_POLICIES
from edgepolicy.kube import ConflictError, KubeApi, KubernetesApiError
from edgepolicy.policy_data import policy_key

# A status write that meets a newer version of its policy re-reads it and tries again, at most
# this many times (another writer, e.g. `kubectl apply` of the spec, bumped it meanwhile).
_CONFLICT_ATTEMPTS = 3


@dataclass
class RecordSummary:
    """What one recording wrote: statuses, Events created and Events counted again, and the
    writes that failed (each with its reason)."""

    statuses: int = 0
    events_created: int = 0
    events_repeated: int = 0
    errors: list[str] = field(default_factory=list)


class AuditRecorder:
    """Writes the results of successive audit runs of one audit process.

    The Events it wrote are remembered (name to stored Event), so a finding seen again is
    counted with one update; after a restart the first run finds them by name.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        instance: str,
        violations_limit: int = DEFAULT_VIOLATIONS_LIMIT,
        timeout: float = 10.0,
    ) -> None:
        self._api = api
        self._instance = instance
        self._limit = violations_limit
        self._timeout = timeout
        self._events: dict[str, dict[str, Any]] = {}

    def record(
        self,
        found: Iterable[AuditViolation],
        policies: Iterable[Mapping[str, Any]],
        *,
        at: datetime,
    ) -> RecordSummary:
        """Write each stored policy's status and the Events of ``found`` (the run's findings)
        observed at ``at``. Never raises for API failures: they are in the summary."""
        summary = RecordSummary()
        found = list(found)
        stored = {"/".join(policy_key(policy)): policy for policy in policies}
        statuses = policy_statuses(found, stored, at=at, limit=self._limit)
        for policy_id, status in statuses.items():
            try:
                self._write_status(stored[policy_id], status)
                summary.statuses += 1
            except KubernetesApiError as error:
                summary.errors.append(f"status of FinOpsPolicy {policy_id}: {error}")
        seen: dict[str, dict[str, Any]] = {}
        for violation in found:
            name = event_name(violation)
            if name in seen:  # the same finding twice on one object (never from the Rego)
                continue
            try:
                event, created = self._emit(violation, name, at)
            except KubernetesApiError as error:
                where = f"{violation.kind} {violation.namespace}/{violation.name}"
                summary.errors.append(f"event on {where}: {error}")
                continue
            seen[name] = event
            if created:
                summary.events_created += 1
            else:
                summary.events_repeated += 1
        self._events = seen  # forget Events of findings that are gone
        return summary

    def _write_status(self, policy: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        namespace, name = policy_key(policy)
        path = FINOPS_POLICIES.object_path(namespace, name)
        current: Mapping[str, Any] | None = policy
        for _ in range(_CONFLICT_ATTEMPTS):
            if current is None:
                raise KubernetesApiError(f"Kubernetes API {path}: the policy no longer exists")
            body = {**current, "status": dict(status)}
            try:
                if self._api.replace_status(path, body, timeout=self._timeout) is None:
                    raise KubernetesApiError(f"Kubernetes API {path}: the policy no longer exists")
                return
            except ConflictError:
                current = self._api.get_object(path, timeout=self._timeout)
        raise KubernetesApiError(
            f"Kubernetes API {path}/status: the policy kept changing ({_CONFLICT_ATTEMPTS} "
            "conflicting writes)"
        )

    def _emit(
        self, violation: AuditViolation, name: str, at: datetime
    ) -> tuple[dict[str, Any], bool]:
        """Create the Event of ``violation``, or count it again if it exists; return the stored
        Event and whether it was created."""
        path = f"/apis/events.k8s.io/v1/namespaces/{quote(violation.namespace, safe='')}/events"
        known = self._events.get(name)
        for _ in range(_CONFLICT_ATTEMPTS):
            if known is None:
                try:
                    event = new_event(violation, at=at, instance=self._instance)
                    return self._api.create_object(path, event, timeout=self._timeout), True
                except ConflictError:  # written by an earlier process: count it
                    known = self._api.get_object(f"{path}/{name}", timeout=self._timeout)
                    continue
            try:
                stored = self._api.replace_object(
                    f"{path}/{name}", repeated_event(known, at=at), timeout=self._timeout
                )
            except ConflictError:
                known = self._api.get_object(f"{path}/{name}", timeout=self._timeout)
                continue
            if stored is not None:
                return stored, False
            known = None  # expired (the API server's event TTL): report it anew
        raise KubernetesApiError(f"Kubernetes API {path}/{name}: the Event kept changing")
