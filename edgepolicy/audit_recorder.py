"""Write an audit run's results into the cluster through the one Kubernetes client: each
FinOpsPolicy's ``status`` (through the status subresource) and an Event on each offending
object, counted rather than repeated (documents built by :mod:`edgepolicy.audit_records`).

A write that fails (the policy was deleted meanwhile, the API server refused it) is reported in
the run's summary and the rest of the run goes on: one bad object never hides the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from edgepolicy.audit_records import (
    DEFAULT_VIOLATIONS_LIMIT,
    AuditViolation,
    counted_event,
    event_name,
    new_event,
    policy_statuses,
    series_count,
)
from edgepolicy.cluster_inventory import FINOPS_POLICIES
from edgepolicy.kube import ConflictError, KubeApi, KubernetesApiError
from edgepolicy.policy_data import policy_key

# How often a lasting finding's Event count is written (client-go's series refresh).
DEFAULT_EVENT_REFRESH_SECONDS = 30 * 60.0
# A status write that meets a newer version of its policy re-reads it and tries again, at most
# this many times (another writer, e.g. `kubectl apply` of the spec, bumped it meanwhile).
_CONFLICT_ATTEMPTS = 3


@dataclass
class RecordSummary:
    """What one recording wrote: statuses, Events created, Events whose count was written,
    Events counted in memory only (written at their next refresh), and the writes that failed
    (each with its reason)."""

    statuses: int = 0
    events_created: int = 0
    events_counted: int = 0
    events_deferred: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _KnownEvent:
    """An Event this process wrote: as last stored, how often its finding was seen, and when
    (monotonic seconds) its count was last written."""

    stored: dict[str, Any]
    count: int
    written: float


class AuditRecorder:
    """Writes the results of successive audit runs of one audit process.

    Events are counted as client-go's events.k8s.io recorder counts isomorphic events: the
    first occurrence creates the Event, the second starts its ``series`` at once, and later
    occurrences are counted in memory and written when the count was last written
    ``event_refresh`` seconds ago or more (30 minutes, client-go's refresh), so a lasting
    violation costs one write per refresh rather than one per run. After a restart the first
    run finds the Events by name and counts on. Event writes run ``writers`` at a time.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        instance: str,
        violations_limit: int = DEFAULT_VIOLATIONS_LIMIT,
        timeout: float = 10.0,
        event_refresh: float = DEFAULT_EVENT_REFRESH_SECONDS,
        writers: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._instance = instance
        self._limit = violations_limit
        self._timeout = timeout
        self._refresh = event_refresh
        self._writers = writers
        self._clock = clock
        self._events: dict[str, _KnownEvent] = {}

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
        # One Event per finding on one object (the same finding twice is never from the Rego).
        jobs = {event_name(violation): violation for violation in found}
        with ThreadPoolExecutor(max_workers=self._writers) as pool:
            outcomes = list(pool.map(lambda job: self._observe(job[0], job[1], at), jobs.items()))
        known: dict[str, _KnownEvent] = {}
        for name, violation, outcome in outcomes:
            if isinstance(outcome, KubernetesApiError):
                where = f"{violation.kind} {violation.namespace}/{violation.name}"
                summary.errors.append(f"event on {where}: {outcome}")
                continue
            event, how = outcome
            known[name] = event
            if how == "created":
                summary.events_created += 1
            elif how == "counted":
                summary.events_counted += 1
            else:
                summary.events_deferred += 1
        self._events = known  # forget the Events of findings that are gone
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

    def _observe(
        self, name: str, violation: AuditViolation, at: datetime
    ) -> tuple[str, AuditViolation, tuple[_KnownEvent, str] | KubernetesApiError]:
        """Count one more occurrence of ``violation``'s Event ``name``; return what became of
        it (created, counted, or deferred to its refresh) or the error."""
        try:
            return name, violation, self._count(name, violation, at)
        except KubernetesApiError as error:
            return name, violation, error

    def _count(self, name: str, violation: AuditViolation, at: datetime) -> tuple[_KnownEvent, str]:
        collection = (
            f"/apis/events.k8s.io/v1/namespaces/{quote(violation.namespace, safe='')}/events"
        )
        path = f"{collection}/{name}"
        known = self._events.get(name)
        now = self._clock()
        if known is not None:
            if "series" in known.stored and now - known.written < self._refresh:
                return _KnownEvent(known.stored, known.count + 1, known.written), "deferred"
            stored, count = known.stored, known.count + 1
        else:
            event = new_event(violation, at=at, instance=self._instance)
            try:
                created = self._api.create_object(collection, event, timeout=self._timeout)
                return _KnownEvent(created, 1, now), "created"
            except ConflictError:  # written by an earlier process: count on from its count
                found = self._api.get_object(path, timeout=self._timeout)
                if found is None:
                    raise KubernetesApiError(f"Kubernetes API {path}: the Event vanished") from None
                stored, count = found, series_count(found) + 1
        for _ in range(_CONFLICT_ATTEMPTS):
            try:
                written = self._api.replace_object(
                    path, counted_event(stored, count, at=at), timeout=self._timeout
                )
            except ConflictError:
                fresh = self._api.get_object(path, timeout=self._timeout)
                if fresh is None:
                    break
                stored, count = fresh, max(count, series_count(fresh) + 1)
                continue
            if written is None:
                break
            return _KnownEvent(written, count, now), "counted"
        else:
            raise KubernetesApiError(f"Kubernetes API {path}: the Event kept changing")
        # Gone (the API server's event TTL, an hour by default): report the finding anew.
        event = new_event(violation, at=at, instance=self._instance)
        return _KnownEvent(
            self._api.create_object(collection, event, timeout=self._timeout), 1, now
        ), "created"
