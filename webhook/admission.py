"""Answer AdmissionReviews: gather context, ask OPA, build the response, log and count it.

The data path runs one way: the received review → :func:`edgepolicy.input_builder.decision_input`
(the same input builder ``edgepolicy check`` uses) with context from the cluster and the model
annotations verified by :mod:`edgepolicy.model_context` (the same code as ``check``) → OPA's
decision document → the AdmissionResponse. A ``context`` inside the received review is dropped.
Python never decides a rule itself. When no decision can be had within the deadline (OPA or the
Kubernetes API down or slow), the configured failure mode answers: deny (fail closed, the
default) or admit with a warning (fail open).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from edgepolicy.webhook import decision_log, metrics, review_codec
from edgepolicy.webhook.config import RESPONSE_MARGIN_SECONDS, WebhookConfig
from edgepolicy.webhook.decision_slots import DecisionSlots
from edgepolicy.webhook.lookups import SCALABLE_KINDS, TtlCache

from edgepolicy.decision import Decision
from edgepolicy.errors import OpaError, OpaUnavailableError
from edgepolicy.input_builder import decision_input
from edgepolicy.kube import KubernetesApiError
from edgepolicy.manifests import is_policy_object
from edgepolicy.model_context import (
    build_models,
    configmap_names,
    data_model_policies,
    declared_models,
)
from edgepolicy.models.verifier import ModelVerifier
from edgepolicy.validated_policies import NO_POLICIES, ValidatedPolicies, validate_policies

_LOG = logging.getLogger("edgepolicy.webhook")

# The API group of the scalable workload kinds the policies understand.
_WORKLOAD_GROUP = "apps"


class DecisionSource(Protocol):
    """What the service needs from OPA (implemented by :class:`edgepolicy.opa_client.OpaClient`)."""

    def decide(self, input_doc: Mapping[str, Any]) -> Decision: ...

    def query(self, path: str, input_doc: Mapping[str, Any] | None = None) -> Any: ...

    def health(self, *, bundles: bool = False) -> bool: ...


class ContextSource(Protocol):
    """What the service needs from the cluster (implemented by
    :class:`edgepolicy.webhook.lookups.ClusterLookups`)."""

    def finops_policies(self, namespace: str, *, timeout: float) -> ValidatedPolicies: ...

    def model_policies(self, namespace: str, *, timeout: float) -> ValidatedPolicies: ...

    def configmap(self, namespace: str, name: str, *, timeout: float) -> dict[str, Any] | None: ...

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
        verifier: ModelVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._opa = opa
        self._kube = kube
        self._verifier = verifier if verifier is not None else ModelVerifier()
        # The ModelPolicies of OPA's data (bundles, serve --policies) by namespace, read as
        # briefly cached as the cluster's.
        self._data_policies = TtlCache(config.kube_cache_seconds)
        self._clock = clock
        self._opa_timeout = config.opa_timeout(kube is not None)
        self._slots = DecisionSlots(config.concurrent_decisions)

    def answer(
        self, endpoint: str, review: Mapping[str, Any], *, arrived: float | None = None
    ) -> dict[str, Any]:
        """Return the AdmissionReview answering ``review`` (already checked by
        :func:`edgepolicy.webhook.review_codec.parse_review`) at ``endpoint`` (``validate`` or
        ``mutate``).

        ``arrived`` is when the request arrived (on the service's clock); the deadline counts
        from then, so a request that waited too long (for the worker, for a decision slot) is
        answered at once by the failure mode, without asking OPA. Never raises for OPA or
        Kubernetes API failures: those become the failure-mode answer.
        """
        now = self._clock()
        started = min(arrived, now) if arrived is not None else now
        request: Mapping[str, Any] = review["request"]
        uid = str(request["uid"])
        decision: Decision | None = None
        error: str | None = None
        if not review_codec.is_evaluated(request):
            response = review_codec.untouched_response(uid)
        else:
            try:
                decision = self._decide(review, started + self._config.timeout)
            except _NoDecision as failure:
                error = failure.reason
            except Exception:  # a bug must not become an HTTP 500: the failure mode answers
                _LOG.exception("unexpected error deciding %s", uid)
                error = "internal error (logged by the webhook)"
            if error is not None:
                mode = "fail-open" if self._config.fail_open else "fail-closed"
                metrics.FAILURE_MODE.labels(mode=mode).inc()
                response = review_codec.unavailable_response(
                    uid, error, fail_open=self._config.fail_open
                )
            elif decision is not None:
                if endpoint == "validate":
                    metrics.record_findings(decision)
                    response = review_codec.validate_response(uid, decision)
                else:
                    response = review_codec.mutate_response(uid, decision)
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

    def queue_wait(self) -> float:
        """Seconds the oldest request waiting for a decision slot has waited (0: none waits)."""
        return self._slots.queue_wait()

    def _decide(self, review: Mapping[str, Any], deadline: float) -> Decision:
        # OPA must be asked early enough for its whole timeout to fit before the deadline.
        last_call = deadline - RESPONSE_MARGIN_SECONDS - self._opa_timeout
        taken_at = self._slots.acquire(last_call - self._clock())
        if taken_at is None:
            raise self._overloaded()
        try:
            if self._clock() > last_call:  # the slot came, but too late
                raise self._overloaded()
            return self._decide_in_slot(review, last_call)
        finally:
            self._slots.release(taken_at)

    def _overloaded(self) -> _NoDecision:
        return _NoDecision(
            f"the webhook is overloaded: the request waited too long for a decision slot "
            f"to be decided within the {self._config.timeout:g}s deadline"
        )

    def _decide_in_slot(self, review: Mapping[str, Any], last_call: float) -> Decision:
        request = review["request"]
        policies, workloads, configmaps = self._context(request, last_call)
        policies = policies.replaced_by(_admitted_policy(request))
        models = self._models(request, policies, configmaps)
        if self._clock() > last_call:
            raise _NoDecision("deadline exceeded before asking OPA")
        try:
            return self._opa.decide(
                decision_input(
                    review, policies=policies, workloads=workloads, models=models or None
                )
            )
        except OpaUnavailableError as error:
            metrics.OPA_ERRORS.labels(reason="unavailable").inc()
            raise _NoDecision(f"policy engine unavailable: {error}") from error
        except OpaError as error:
            metrics.OPA_ERRORS.labels(reason="error").inc()
            raise _NoDecision(f"policy engine error: {error}") from error

    def _models(
        self,
        request: Mapping[str, Any],
        cluster_policies: ValidatedPolicies,
        configmaps: Mapping[str, dict[str, Any] | None],
    ) -> dict[str, Any]:
        """Return ``context.models``: the admitted object's model annotations verified against
        every ModelPolicy of its namespace, those of OPA's data and the cluster's (the cluster's
        copy last, so it wins as in the Rego). Never from the review's own ``context``."""
        obj = request.get("object")
        namespace = request.get("namespace")
        if not isinstance(obj, Mapping) or not namespace or not declared_models(obj):
            return {}  # no model named: nothing to verify, nothing read
        model_policies = [*self._policies_in_data(str(namespace)), *cluster_policies.valid]
        return build_models(obj, str(namespace), model_policies, self._verifier, configmaps)

    def _policies_in_data(self, namespace: str) -> list[dict[str, Any]]:
        """The ModelPolicies of ``namespace`` in OPA's data, cached briefly.

        Raises:
            _NoDecision: OPA is unavailable.
        """
        try:
            found: list[dict[str, Any]] = self._data_policies.get_or_load(
                namespace, lambda: data_model_policies(self._opa, namespace)
            )
        except OpaUnavailableError as error:
            metrics.OPA_ERRORS.labels(reason="unavailable").inc()
            raise _NoDecision(f"policy engine unavailable: {error}") from error
        return found

    def _context(
        self, request: Mapping[str, Any], last_call: float
    ) -> tuple[ValidatedPolicies, list[dict[str, Any]], dict[str, dict[str, Any] | None]]:
        """Return the cluster's FinOpsPolicies and ModelPolicies in the namespace (validated),
        the related workloads (the scale target of an admitted HPA, only when it is a workload
        kind the policies understand; any other target is no context; or the HPAs scaling an
        admitted workload) and the ConfigMaps the admitted object names for its model signatures
        (looked up only when a ModelPolicy of the namespace, in the cluster or in OPA's data,
        could use them)."""
        namespace = request.get("namespace")
        if self._kube is None or not namespace:
            return NO_POLICIES, [], {}
        # All lookups of one request share one budget, so the deadline holds however many.
        budget_end = min(self._clock() + self._config.kube_timeout, last_call)

        def remaining() -> float:
            left = budget_end - self._clock()
            if left <= 0:
                raise KubernetesApiError("lookups took longer than their share of the deadline")
            return left

        kind, name = _kind(request), request.get("name")
        obj = request.get("object")
        named = configmap_names(obj) if isinstance(obj, Mapping) else set()
        try:
            policies = ValidatedPolicies.joined(
                [
                    self._kube.finops_policies(namespace, timeout=remaining()),
                    self._kube.model_policies(namespace, timeout=remaining()),
                ]
            )
            configmaps: dict[str, dict[str, Any] | None] = {}
            has_model_policies = any(p.get("kind") == "ModelPolicy" for p in policies.valid)
            if named and (has_model_policies or self._policies_in_data(namespace)):
                configmaps = {
                    name: self._kube.configmap(namespace, name, timeout=remaining())
                    for name in sorted(named)
                }
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
        return policies, workloads, configmaps

    def ready(self) -> tuple[bool, str]:
        """Tell whether decisions can be made now: OPA answers (with every bundle activated
        when fed by bundles) and the decision document is defined (the policy is loaded)."""
        if not self._opa.health(bundles=self._config.bundles):
            what = "OPA is unreachable or its bundles are not activated"
            return False, what if self._config.bundles else "OPA is unreachable"
        probe = {
            "apiVersion": review_codec.API_VERSION,
            "kind": review_codec.KIND,
            "request": _PROBE,
        }
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
    understand (:data:`edgepolicy.webhook.lookups.SCALABLE_KINDS` in the apps group); None for
    other objects and other targets (a custom scalable resource is not looked up: no context,
    no error)."""
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
