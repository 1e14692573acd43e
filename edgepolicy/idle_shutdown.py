"""Idle shutdown: scale a stored Deployment or StatefulSet to zero when it has been idle longer
than its FinOpsPolicy's ``idleShutdownThresholdMinutes`` (the engine of ``edgepolicy finops
idle``).

For each stored Deployment and StatefulSet, OPA decides (``data.edgepolicy.operations.
idle_shutdown.decision``, over the audit's input) which policy's threshold governs it and,
once Prometheus has told how long it has been idle, whether it is to be shut down and with which
enforcement action. Idle means no GPU utilisation (DCGM) and no request activity (a per-pod
PromQL query, configurable) on any of the workload's pods (kube-state-metrics' ``kube_pod_labels``
matching the workload's ``spec.selector``) since the later of its last activity and the moment its
pods were first seen Running within the look-back (the threshold plus :data:`LOOKBACK_MARGIN`).

``deny``: the previous replica count is written to the annotation
:data:`PREVIOUS_REPLICAS_ANNOTATION`, the workload is scaled to zero through its scale
subresource and an ``IdleShutdown`` Event is created on it. ``warn``: only the Event and the
alert metric. ``dryrun``: only reported (the outcome and a metric labelled ``dryrun``, which
never alerts). A workload at zero replicas that carries the annotation is ``held``: its alert
metric stays until it is scaled up again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import quote

from edgepolicy import audit_records, finops_queries
from edgepolicy.auditing import audit_input, policies_by_namespace
from edgepolicy.cluster_inventory import stored_path
from edgepolicy.errors import OpaError
from edgepolicy.kube import ConflictError, KubeApi, KubernetesApiError
from edgepolicy.prometheus_api import PrometheusClient
from edgepolicy.promql_selectors import quote as promql_string
from edgepolicy.validated_policies import NO_POLICIES, validate_policies

PREVIOUS_REPLICAS_ANNOTATION = "finops.apexlogic.com/idle-shutdown-replicas"
DEFAULT_ACTIVITY_QUERY = "sum by (namespace, pod) (rate(http_requests_total[5m]))"
GPU_QUERY = "max by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL)"
LOOKBACK_MARGIN_MINUTES = 10
EVENT_REASON = "IdleShutdown"
REPORTING_CONTROLLER = "apexlogic.com/edgepolicy-finops-idle"
_DECISION_PACKAGE = "edgepolicy/operations/idle_shutdown"
_KINDS = ("Deployment", "StatefulSet")
_CONFLICT_ATTEMPTS = 3

Query = Callable[[str, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class IdleOutcome:
    """What became of one governed workload in one run.

    ``result`` is ``scaled`` (scaled to zero now), ``held`` (at zero since an earlier
    shutdown), ``alerted`` (idle past the threshold, action ``warn``), ``reported`` (idle past
    the threshold, action ``dryrun``), ``active`` (not idle long enough) or ``no-data`` (no
    Running pod seen in the look-back). ``replicas`` is the count before a shutdown.
    """

    kind: str
    namespace: str
    name: str
    policy: str
    threshold_minutes: int
    idle_minutes: int | None
    action: str
    severity: str
    recipient_group: str
    result: str
    replicas: int

    @property
    def alerting(self) -> bool:
        """Whether the outcome is a shutdown the policy's idleShutdown alert reports."""
        return self.result in ("scaled", "held", "alerted", "reported")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``finops idle --output json``."""
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "policy": self.policy,
            "thresholdMinutes": self.threshold_minutes,
            "idleMinutes": self.idle_minutes,
            "action": self.action,
            "severity": self.severity,
            "recipientGroup": self.recipient_group,
            "result": self.result,
            "replicas": self.replicas,
        }


def idle_expressions(
    workload: Mapping[str, Any], activity_query: str, lookback: str
) -> tuple[str, str] | None:
    """PromQL of (last active time, first Running time) of ``workload``'s pods within
    ``lookback``, as Unix seconds; None when the workload has no usable ``spec.selector``.

    Raises:
        InputError: the selector has an unknown operator.
    """
    metadata = workload.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    spec = workload.get("spec") or {}
    selector = spec.get("selector") if isinstance(spec, Mapping) else None
    if not isinstance(selector, Mapping) or not selector:
        return None
    where = f"{workload.get('kind')} {namespace}/{metadata.get('name')}: spec.selector"
    pods = finops_queries.selected_pods(namespace, selector, where)
    gpu = f"max(({GPU_QUERY}) * on (namespace, pod) {pods})"
    requests = f"max(({activity_query}) * on (namespace, pod) {pods})"
    active = f"(({gpu}) > 0) or (({requests}) > 0)"
    running = (
        "max(max by (namespace, pod) (kube_pod_status_phase"
        f'{{phase="Running", namespace={promql_string(namespace)}}} == 1) '
        f"* on (namespace, pod) {pods})"
    )
    last_active = f"max_over_time(timestamp({active})[{lookback}:1m])"
    first_running = f"min_over_time(timestamp({running})[{lookback}:1m])"
    return last_active, first_running


def idle_minutes(
    prometheus: PrometheusClient,
    workload: Mapping[str, Any],
    *,
    activity_query: str,
    lookback_minutes: int,
    at: datetime,
) -> int | None:
    """Whole minutes ``workload`` has been idle at ``at`` (at most the look-back), or None
    when no pod of it was seen Running within the look-back.

    Raises:
        PrometheusError: a query failed.
        InputError: the workload's selector has an unknown operator.
    """
    expressions = idle_expressions(workload, activity_query, f"{lookback_minutes}m")
    if expressions is None:
        return None
    last_active, first_running = expressions
    running = finops_queries.one_value(prometheus, first_running, at)
    if running is None:
        return None
    active = finops_queries.one_value(prometheus, last_active, at)
    since = running if active is None else max(running, active)
    seconds = Decimal(str(at.timestamp())) - since
    return max(int((seconds / 60).to_integral_value(rounding=ROUND_FLOOR)), 0)


class IdleShutdown:
    """Idle shutdowns in one cluster: ``api`` (the one Kubernetes client), ``prometheus``,
    and ``query`` (an :meth:`OpaClient.query`) deciding; Events name ``instance``. With
    ``dry_run`` every shutdown is only reported, whatever its enforcement action."""

    def __init__(
        self,
        api: KubeApi,
        prometheus: PrometheusClient,
        query: Query,
        *,
        activity_query: str = DEFAULT_ACTIVITY_QUERY,
        instance: str = "edgepolicy-finops-idle",
        timeout: float = 30.0,
        dry_run: bool = False,
    ) -> None:
        self._api = api
        self._dry_run = dry_run
        self._prometheus = prometheus
        self._query = query
        self._activity = activity_query
        self._instance = instance
        self._timeout = timeout

    def run(
        self,
        workloads: Sequence[Mapping[str, Any]],
        policies: Sequence[Mapping[str, Any]],
        *,
        at: datetime,
    ) -> list[IdleOutcome]:
        """Decide and act on each Deployment and StatefulSet of ``workloads`` (stored
        objects) under ``policies``; return the outcomes of the governed ones.

        Raises:
            OpaError: OPA failed or has no idle-shutdown decision loaded.
            PrometheusError: a query failed.
            KubernetesApiError: a write failed.
        """
        grouped = {
            namespace: validate_policies(group, namespace_default=namespace)
            for namespace, group in policies_by_namespace(policies).items()
        }
        outcomes = []
        for workload in workloads:
            if workload.get("kind") not in _KINDS:
                continue
            metadata = workload.get("metadata") or {}
            namespace = str(metadata.get("namespace") or "default")
            document = audit_input(
                workload, policies=grouped.get(namespace, NO_POLICIES), workloads=()
            )
            decision = self._decide(document)
            if decision is None:
                continue
            outcome = self._handle(workload, document, decision, at)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _decide(self, document: Mapping[str, Any]) -> Mapping[str, Any] | None:
        package = self._query(_DECISION_PACKAGE, document)
        if not isinstance(package, Mapping):
            raise OpaError(f"OPA: data.{_DECISION_PACKAGE.replace('/', '.')} is not a package")
        decision = package.get("decision")
        return decision if isinstance(decision, Mapping) else None

    def _handle(
        self,
        workload: Mapping[str, Any],
        document: Mapping[str, Any],
        decision: Mapping[str, Any],
        at: datetime,
    ) -> IdleOutcome | None:
        metadata = workload.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        replicas = _replicas(workload)
        threshold = int(decision["thresholdMinutes"])

        def outcome(result: str, idle: int | None, action: str | None = None) -> IdleOutcome:
            return IdleOutcome(
                kind=str(workload.get("kind")),
                namespace=str(metadata.get("namespace") or "default"),
                name=str(metadata.get("name")),
                policy=str(decision["policy"]),
                threshold_minutes=threshold,
                idle_minutes=idle,
                action=action or str(decision["action"]),
                severity=str(decision.get("severity") or ""),
                recipient_group=str(decision.get("recipientGroup") or ""),
                result=result,
                replicas=replicas,
            )

        if replicas == 0:
            held = PREVIOUS_REPLICAS_ANNOTATION in annotations
            return outcome("held", None) if held else None
        idle = idle_minutes(
            self._prometheus,
            workload,
            activity_query=self._activity,
            lookback_minutes=threshold + LOOKBACK_MARGIN_MINUTES,
            at=at,
        )
        if idle is None:
            return outcome("no-data", None)
        judged = self._decide({**document, "idle": {"minutes": idle}})
        if judged is None or not judged.get("shutdown"):
            return outcome("active", idle)
        action = "dryrun" if self._dry_run else str(judged["action"])
        if action == "dryrun":
            return outcome("reported", idle, action)
        result = outcome("alerted", idle, action)
        if action == "deny":
            if not self._scale_to_zero(workload, replicas):
                return None  # gone meanwhile
            result = outcome("scaled", idle, action)
        self._event(workload, result, at)
        return result

    def _scale_to_zero(self, workload: Mapping[str, Any], replicas: int) -> bool:
        """Record ``replicas`` in the annotation, then scale to zero through the scale
        subresource; False when the workload is gone."""
        path = stored_path(workload)
        current: Mapping[str, Any] | None = workload
        for _ in range(_CONFLICT_ATTEMPTS):
            if current is None:
                return False
            metadata = dict(current.get("metadata") or {})
            metadata["annotations"] = {
                **(metadata.get("annotations") or {}),
                PREVIOUS_REPLICAS_ANNOTATION: str(replicas),
            }
            try:
                written = self._api.replace_object(
                    path, {**current, "metadata": metadata}, timeout=self._timeout
                )
            except ConflictError:
                current = self._api.get_object(path, timeout=self._timeout)
                continue
            if written is None:
                return False
            break
        else:
            raise KubernetesApiError(f"Kubernetes API {path}: the workload kept changing")
        for _ in range(_CONFLICT_ATTEMPTS):
            scale = self._api.read_scale(path, timeout=self._timeout)
            if scale is None:
                return False
            scale = {**scale, "spec": {**(scale.get("spec") or {}), "replicas": 0}}
            try:
                return self._api.replace_scale(path, scale, timeout=self._timeout) is not None
            except ConflictError:
                continue
        raise KubernetesApiError(f"Kubernetes API {path}/scale: the workload kept changing")

    def _event(self, workload: Mapping[str, Any], outcome: IdleOutcome, at: datetime) -> None:
        """Create the IdleShutdown Event, or count it again (read, then update) when the same
        shutdown was reported before."""
        metadata = workload.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        digest = hashlib.sha256(
            "\0".join((uid, outcome.policy, outcome.action, outcome.result)).encode()
        ).hexdigest()[:16]
        name = f"{outcome.name[:200]}.{digest}"
        collection = f"/apis/events.k8s.io/v1/namespaces/{quote(outcome.namespace, safe='')}/events"
        verb = "scaled to zero" if outcome.result == "scaled" else "would be scaled to zero (warn)"
        note = (
            f"{outcome.kind} {outcome.namespace}/{outcome.name} {verb}: idle {outcome.idle_minutes}"
            f" minutes, above idleShutdownThresholdMinutes {outcome.threshold_minutes} of "
            f"FinOpsPolicy {outcome.policy}; it had {outcome.replicas} replica(s)"
        )
        regarding = {
            "apiVersion": str(workload.get("apiVersion") or "apps/v1"),
            "kind": outcome.kind,
            "namespace": outcome.namespace,
            "name": outcome.name,
        }
        if uid:
            regarding["uid"] = uid
        event = {
            "apiVersion": audit_records.EVENT_API_VERSION,
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": outcome.namespace,
                "labels": {"app.kubernetes.io/managed-by": "edgepolicy-finops-idle"},
                "annotations": {
                    "policy.apexlogic.com/policy": outcome.policy,
                    "policy.apexlogic.com/rule": "finops.idle-shutdown",
                    "policy.apexlogic.com/enforcement-action": outcome.action,
                },
            },
            "eventTime": audit_records.micro_time(at),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self._instance[:128] or "edgepolicy-finops-idle",
            "action": "ScaleToZero",
            "reason": EVENT_REASON,
            "type": "Normal" if outcome.result == "scaled" else "Warning",
            "regarding": regarding,
            "note": note[:1024],
        }
        try:
            self._api.create_object(collection, event, timeout=self._timeout)
            return
        except ConflictError:
            pass
        path = f"{collection}/{name}"
        for _ in range(_CONFLICT_ATTEMPTS):
            stored = self._api.get_object(path, timeout=self._timeout)
            if stored is None:
                self._api.create_object(collection, event, timeout=self._timeout)
                return
            counted = audit_records.counted_event(
                stored, audit_records.series_count(stored) + 1, at=at
            )
            try:
                self._api.replace_object(path, counted, timeout=self._timeout)
                return
            except ConflictError:
                continue
        raise KubernetesApiError(f"Kubernetes API {path}: the Event kept changing")


def _replicas(workload: Mapping[str, Any]) -> int:
    """``spec.replicas`` (1 when absent, as the API server defaults it)."""
    spec = workload.get("spec") or {}
    value = spec.get("replicas", 1) if isinstance(spec, Mapping) else 1
    return value if isinstance(value, int) and not isinstance(value, bool) else 1
