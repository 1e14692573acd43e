"""Answer AdmissionReviews: gather context, ask OPA, build the response, log and count it.

The data path runs one way: the received review → :func:`edgepolicy.review.decision_input`
(the same input builder ``edgepolicy check`` uses) with context from the cluster → OPA's
decision document → the AdmissionResponse. Python never decides a rule itself. When no decision
can be had within the deadline (OPA or the Kubernetes API down or slow), the configured failure
mode answers: deny (fail closed, the default) or admit with a warning (fail open).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from edgepolicy.decision import Decision
from edgepolicy.errors import OpaError, OpaUnavailableError
from edgepolicy.kube import KubernetesApiError
from edgepolicy.manifests import is_policy_object
from edgepolicy.review import decision_input
from edgepolicy.validated_policies import NO_POLICIES, ValidatedPolicies, validate_policies
from webhook import decision_log, metrics, reviews
from webhook.config import RESPONSE_MARGIN_SECONDS, WebhookConfig
from webhook.lookups import SCALABLE_KINDS

# The API group of the scalable workload kinds the policies understand.
_WORKLOAD_GROUP = "apps"


class DecisionSource(Protocol):
    """What the service needs from OPA (implemented by :class:`edgepolicy.opa_client.OpaClient`)."""

    def decide(self, input_doc: Mapping[str, Any]) -> Decision: ...

    def health(self, *, bundles: bool = False) -> bool: ...


class ContextSource(Protocol):
    """What the service needs from the cluster (implemented by
    :class:`webhook.lookups.ClusterLookups`)."""

    def finops_policies(self, namespace: str, *, timeout: float) -> ValidatedPolicies: ...

    def workload(
        self, namespace: str, kind: str, name: str, *, timeout: float
    ) -> dict[str, Any] | None: ...

    def autoscalers(self, namespace: str, *, timeout: float) -> list[dict[str, Any]]: ...


class _NoDecision(Exception):
    """No decision could be made in time; ``reason`` says why (shown to the user)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AdmissionService:
    """Decides AdmissionReviews for the /validate and /mutate endpoints."""

    def __init__(
        self,
        config: WebhookConfig,
        opa: DecisionSource,
        kube: ContextSource | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._opa = opa
        self._kube = kube
        self._clock = clock
        self._opa_timeout = config.opa_timeout(kube is not None)

    def answer(
        self, endpoint: str, review: Mapping[str, Any], *, arrived: float | None = None
    ) -> dict[str, Any]:
        """Return the AdmissionReview answering ``review`` (already checked by
        :func:`webhook.reviews.parse_review`) at ``endpoint`` (``validate`` or ``mutate``).

        ``arrived`` is when the request arrived (on the service's clock); the deadline counts
        from then, so a request that waited too long for a thread is answered at once by the
        failure mode. Never raises for OPA or Kubernetes API failures: those become the
        failure-mode answer.
        """
        now = self._clock()
        started = min(arrived, now) if arrived is not None else now
        request: Mapping[str, Any] = review["request"]
        uid = str(request["uid"])
        decision: Decision | None = None
        error: str | None = None
        if not reviews.is_evaluated(request):
            response = reviews.untouched_response(uid)
        else:
            try:
                decision = self._decide(review, started + self._config.timeout)
            except _NoDecision as failure:
                error = failure.reason
                mode = "fail-open" if self._config.fail_open else "fail-closed"
                metrics.FAILURE_MODE.labels(mode=mode).inc()
                response = reviews.unavailable_response(
                    uid, failure.reason, fail_open=self._config.fail_open
                )
            else:
                if endpoint == "validate":
                    metrics.record_findings(decision)
                    response = reviews.validate_response(uid, decision)
                else:
                    response = reviews.mutate_response(uid, decision)
        allowed = bool(response["response"]["allowed"])
        elapsed = self._clock() - started
        metrics.REQUESTS.labels(
            endpoint=endpoint, operation=str(request.get("operation")), allowed=str(allowed).lower()
        ).inc()
        metrics.DURATION.labels(endpoint=endpoint).observe(elapsed)
        decision_log.emit(
            decision_log.record(
                endpoint=endpoint,
                request=request,
                allowed=allowed,
                duration_ms=elapsed * 1000,
                decision=decision,
                error=error,
                patched="patch" in response["response"],
            )
        )
        return response

    def _decide(self, review: Mapping[str, Any], deadline: float) -> Decision:
        # OPA must be asked early enough for its whole timeout to fit before the deadline.
        last_call = deadline - RESPONSE_MARGIN_SECONDS - self._opa_timeout
        if self._clock() > last_call:
            raise _NoDecision(
                f"the webhook is overloaded: the request waited too long for a free thread to "
                f"be decided within the {self._config.timeout:g}s deadline"
            )
        policies, workloads = self._context(review["request"], last_call)
        policies = policies.replaced_by(_admitted_policy(review["request"]))
        if self._clock() > last_call:
            raise _NoDecision("deadline exceeded before asking OPA")
        try:
            return self._opa.decide(decision_input(review, policies=policies, workloads=workloads))
        except OpaUnavailableError as error:
            metrics.OPA_ERRORS.labels(reason="unavailable").inc()
            raise _NoDecision(f"policy engine unavailable: {error}") from error
        except OpaError as error:
            metrics.OPA_ERRORS.labels(reason="error").inc()
            raise _NoDecision(f"policy engine error: {error}") from error

    def _context(
        self, request: Mapping[str, Any], last_call: float
    ) -> tuple[ValidatedPolicies, list[dict[str, Any]]]:
        """Return the cluster's FinOpsPolicies in the namespace (validated) and the related
        workloads: the scale target of an admitted HPA (only when it is a workload kind the
        policies understand; any other target is no context), or the HPAs scaling an admitted
        workload."""
        namespace = request.get("namespace")
        if self._kube is None or not namespace:
            return NO_POLICIES, []
        # All lookups of one request share one budget, so the deadline holds however many.
        budget_end = min(self._clock() + self._config.kube_timeout, last_call)

        def remaining() -> float:
            left = budget_end - self._clock()
            if left <= 0:
                raise KubernetesApiError("lookups took longer than their share of the deadline")
            return left

        kind, name = _kind(request), request.get("name")
        try:
            policies = self._kube.finops_policies(namespace, timeout=remaining())
            workloads = []
            target = _scale_target(request)
            if target is not None:
                found = self._kube.workload(namespace, *target, timeout=remaining())
                if found is not None:
                    workloads.append(found)
            elif kind in SCALABLE_KINDS and name:
                workloads = [
                    hpa
                    for hpa in self._kube.autoscalers(namespace, timeout=remaining())
                    if _targets(hpa, kind, str(name))
                ]
        except KubernetesApiError as error:
            metrics.KUBE_ERRORS.inc()
            raise _NoDecision(f"cannot read decision context: {error}") from error
        return policies, workloads

    def ready(self) -> tuple[bool, str]:
        """Tell whether decisions can be made now: OPA answers (with every bundle activated
        when fed by bundles) and the decision document is defined (the policy is loaded)."""
        if not self._opa.health(bundles=self._config.bundles):
            what = "OPA is unreachable or its bundles are not activated"
            return False, what if self._config.bundles else "OPA is unreachable"
        probe = {"apiVersion": reviews.API_VERSION, "kind": reviews.KIND, "request": _PROBE}
        try:
            self._opa.decide(decision_input(probe))
        except OpaError as error:
            return False, f"policy not loaded: {error}"
        return True, "ready"


# A DELETE review: cheap to evaluate, and defined exactly when the decision document is loaded.
_PROBE: dict[str, Any] = {
    "uid": "readiness-probe",
    "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
    "resource": {"group": "", "version": "v1", "resource": "configmaps"},
    "namespace": "default",
    "name": "readiness-probe",
    "operation": "DELETE",
    "userInfo": {"username": "edgepolicy-readiness"},
    "object": None,
    "oldObject": None,
    "dryRun": True,
}


def _kind(request: Mapping[str, Any]) -> str:
    return str((request.get("kind") or {}).get("kind", ""))


def _scale_target_ref(obj: Any) -> Mapping[str, Any] | None:
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    ref = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
    return ref if isinstance(ref, Mapping) else None


def _targets(hpa: Mapping[str, Any], kind: str, name: str) -> bool:
    """Tell whether ``hpa`` scales the object of ``kind`` named ``name``."""
    ref = _scale_target_ref(hpa)
    return ref is not None and ref.get("kind") == kind and ref.get("name") == name


def _scale_target(request: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return (kind, name) of an HPA's scaleTargetRef when it names a workload kind the policies
    understand (:data:`webhook.lookups.SCALABLE_KINDS` in the apps group); None for other objects
    and other targets (a custom scalable resource is not looked up: no context, no error)."""
    if _kind(request) != "HorizontalPodAutoscaler":
        return None
    ref = _scale_target_ref(request.get("object"))
    if ref is None:
        return None
    api_version, kind, name = ref.get("apiVersion"), ref.get("kind"), ref.get("name")
    if not (isinstance(api_version, str) and isinstance(name, str) and name):
        return None
    if kind not in SCALABLE_KINDS or api_version.partition("/")[0] != _WORKLOAD_GROUP:
        return None
    return str(kind), name


def _admitted_policy(request: Mapping[str, Any]) -> ValidatedPolicies:
    """Return the admitted object validated when it is a policy (the API server has checked it
    against the CRD installed in the cluster, which may be older than edgepolicy's), else none."""
    obj = request.get("object")
    if not isinstance(obj, Mapping) or not is_policy_object(obj):
        return NO_POLICIES
    return validate_policies([obj], namespace_default=str(request.get("namespace") or "default"))
