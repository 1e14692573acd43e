"""The admission service with stand-ins for OPA and the Kubernetes API."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from edgepolicy.webhook import decision_log, metrics
from edgepolicy.webhook.admission import AdmissionService
from edgepolicy.webhook.config import WebhookConfig
from webhook_builders import decision, finding, review

from edgepolicy.decision import Decision
from edgepolicy.errors import OpaError, OpaUnavailableError
from edgepolicy.kube import KubernetesApiError
from edgepolicy.validated_policies import ValidatedPolicies, validate_policies

CONFIG = WebhookConfig(opa_url="http://127.0.0.1:1")


class FakeOpa:
    """Answers every decision with ``answer`` (or raises it) and remembers the inputs."""

    def __init__(self, answer: Decision | Exception, healthy: bool = True) -> None:
        self.answer = answer
        self.healthy = healthy
        self.inputs: list[Mapping[str, Any]] = []
        self.health_bundles: list[bool] = []
        self.data: dict[str, Any] = {}
        self.queries: list[str] = []

    def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        self.inputs.append(input_doc)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def query(self, path: str, input_doc: Mapping[str, Any] | None = None) -> Any:
        self.queries.append(path)
        if isinstance(self.answer, OpaUnavailableError):
            raise self.answer
        if path not in self.data:
            raise OpaError(f"OPA has no value at data.{path}")
        return self.data[path]

    def health(self, *, bundles: bool = False) -> bool:
        self.health_bundles.append(bundles)
        return self.healthy


def _budget(namespace: str, spec: Any = None) -> dict[str, Any]:
    return {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": "budget", "namespace": namespace},
        "spec": {"targetWorkloadSelector": {}} if spec is None else spec,
    }


class FakeKube:
    """A cluster holding one FinOpsPolicy, one Deployment and the given ModelPolicies and
    ConfigMaps, or failing every lookup."""

    def __init__(
        self,
        error: Exception | None = None,
        models: list[dict[str, Any]] | None = None,
        configmaps: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.error = error
        self.models = models or []
        self.configmaps = configmaps or {}
        self.calls: list[tuple[Any, ...]] = []

    def finops_policies(self, namespace: str, *, timeout: float) -> ValidatedPolicies:
        self.calls.append(("policies", namespace, timeout))
        if self.error:
            raise self.error
        return validate_policies([_budget(namespace)])

    def model_policies(self, namespace: str, *, timeout: float) -> ValidatedPolicies:
        return validate_policies(self.models)

    def configmap(self, namespace: str, name: str, *, timeout: float) -> dict[str, Any] | None:
        self.calls.append(("configmap", namespace, name))
        return self.configmaps.get(name)

    def workload(
        self, namespace: str, kind: str, name: str, *, timeout: float
    ) -> dict[str, Any] | None:
        self.calls.append(("workload", namespace, kind, name))
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}}

    def autoscalers(self, namespace: str, *, timeout: float) -> list[dict[str, Any]]:
        self.calls.append(("autoscalers", namespace))
        return [_hpa("web-hpa", "Deployment", "web"), _hpa("db-hpa", "StatefulSet", "web")]


def _hpa(name: str, kind: str, target: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "ai"},
        "spec": {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target}},
    }


def _sample(counter: Any, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get())


def test_validate_asks_opa_with_the_review_and_empty_context() -> None:
    opa = FakeOpa(decision(violations=(finding("finops.cpu"),)))
    answer = AdmissionService(CONFIG, opa).answer("validate", review())
    assert answer["response"]["allowed"] is False
    assert answer["response"]["uid"] == "3f1c-uid"
    (sent,) = opa.inputs
    assert sent["request"] == review()["request"]
    assert sent["context"] == {
        "policies": [],
        "invalidPolicies": [],
        "policiesValidated": True,
        "workloads": [],
    }


def test_update_sends_the_old_object_to_opa() -> None:
    opa = FakeOpa(decision())
    AdmissionService(CONFIG, opa).answer("validate", review("UPDATE"))
    assert opa.inputs[0]["request"]["oldObject"]["metadata"]["name"] == "web"


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed_without_asking_opa(operation: str) -> None:
    opa = FakeOpa(OpaUnavailableError("must not be asked"))
    document = review(operation)
    document["request"]["object"] = None
    answer = AdmissionService(CONFIG, opa).answer("validate", document)
    assert answer["response"] == {"uid": "3f1c-uid", "allowed": True}
    assert opa.inputs == []


def test_cluster_policies_and_the_hpa_target_go_into_the_context() -> None:
    hpa = _hpa("web", "Deployment", "web")
    opa, kube = FakeOpa(decision()), FakeKube()
    AdmissionService(CONFIG, opa, kube).answer(
        "validate", review(kind="HorizontalPodAutoscaler", obj=hpa)
    )
    context = opa.inputs[0]["context"]
    assert [p["metadata"]["name"] for p in context["policies"]] == ["budget"]
    assert context["workloads"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    ]
    assert kube.calls[1] == ("workload", "ai", "Deployment", "web")
    assert 0 < kube.calls[0][2] <= CONFIG.kube_timeout


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("example.com/v1", "Rollout"),  # a custom scalable resource
        ("example.com/v1", "Deployment"),  # a custom kind named like a workload
        ("v1", "ReplicationController"),  # not a workload the policies understand
    ],
)
def test_hpa_targets_the_policies_do_not_understand_are_no_context(
    api_version: str, kind: str
) -> None:
    opa, kube = FakeOpa(decision()), FakeKube()
    hpa = _hpa("web", kind, "web", api_version)
    answer = AdmissionService(CONFIG, opa, kube).answer(
        "validate", review(kind="HorizontalPodAutoscaler", obj=hpa)
    )
    assert answer["response"]["allowed"] is True
    assert [call[0] for call in kube.calls] == ["policies"]
    assert opa.inputs[0]["context"]["workloads"] == []


def test_lookups_share_one_budget() -> None:
    ticks = iter([0.0] * 5 + [1.5, 1.5])  # the HPA lookup would start after the budget
    kube = FakeKube()
    opa = FakeOpa(decision())
    answer = AdmissionService(CONFIG, opa, kube, clock=lambda: next(ticks)).answer(
        "validate", review()
    )
    assert answer["response"]["allowed"] is False
    assert "share of the deadline" in answer["response"]["status"]["message"]
    assert [call[0] for call in kube.calls] == ["policies"]
    assert opa.inputs == []


def test_an_admitted_workload_gets_the_hpas_scaling_it() -> None:
    opa, kube = FakeOpa(decision()), FakeKube()
    AdmissionService(CONFIG, opa, kube).answer("validate", review())
    assert [call[0] for call in kube.calls] == ["policies", "autoscalers"]
    workloads = opa.inputs[0]["context"]["workloads"]
    assert [hpa["metadata"]["name"] for hpa in workloads] == ["web-hpa"]


def test_other_kinds_need_no_workload_lookup() -> None:
    kube = FakeKube()
    AdmissionService(CONFIG, FakeOpa(decision()), kube).answer("validate", review(kind="Pod"))
    assert [call[0] for call in kube.calls] == ["policies"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OpaUnavailableError("connection refused"), "unavailable"),
        (OpaError("decision undefined"), "error"),
    ],
)
def test_opa_failure_fails_closed_by_default(error: Exception, reason: str) -> None:
    before = _sample(metrics.OPA_ERRORS, reason=reason)
    answer = AdmissionService(CONFIG, FakeOpa(error)).answer("validate", review())
    response = answer["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 503
    assert str(error) in response["status"]["message"]
    assert _sample(metrics.OPA_ERRORS, reason=reason) == before + 1


def test_opa_failure_fails_open_when_configured() -> None:
    config = WebhookConfig(opa_url="http://127.0.0.1:1", fail_open=True)
    answer = AdmissionService(config, FakeOpa(OpaUnavailableError("timed out"))).answer(
        "mutate", review()
    )
    assert answer["response"]["allowed"] is True
    assert "timed out" in answer["response"]["warnings"][0]


def test_kubernetes_failure_follows_the_failure_mode() -> None:
    kube = FakeKube(KubernetesApiError("Kubernetes API: HTTP 403 forbidden"))
    opa = FakeOpa(decision())
    answer = AdmissionService(CONFIG, opa, kube).answer("validate", review())
    assert answer["response"]["allowed"] is False
    assert "HTTP 403 forbidden" in answer["response"]["status"]["message"]
    assert opa.inputs == []


@pytest.mark.parametrize("fail_open", [False, True])
def test_an_unexpected_error_is_answered_by_the_failure_mode(
    fail_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = WebhookConfig(opa_url="http://127.0.0.1:1", fail_open=fail_open)
    answer = AdmissionService(config, FakeOpa(KeyError("a bug"))).answer("validate", review())
    response = answer["response"]
    assert response["uid"] == review()["request"]["uid"]
    assert response["allowed"] is fail_open
    assert "a bug" not in str(response)  # internals stay in the log
    assert "unexpected error deciding" in caplog.text and "a bug" in caplog.text


def test_a_request_that_waited_past_its_deadline_is_answered_at_once() -> None:
    opa = FakeOpa(decision())
    service = AdmissionService(CONFIG, opa, clock=lambda: 100.0)
    answer = service.answer("validate", review(), arrived=100.0 - CONFIG.timeout)
    assert answer["response"]["allowed"] is False
    assert "overloaded" in answer["response"]["status"]["message"]
    assert opa.inputs == []
    # A short wait still leaves OPA its whole timeout: decided normally.
    assert service.answer("validate", review(), arrived=99.9)["response"]["allowed"] is True


class _HeldOpa(FakeOpa):
    """An OPA whose first decision waits until ``release`` is set (it holds its slot)."""

    def __init__(self) -> None:
        super().__init__(decision())
        self.asked = threading.Event()
        self.release = threading.Event()

    def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        if not self.asked.is_set():
            self.asked.set()
            self.release.wait(10)
        return super().decide(input_doc)


def _hold_the_slot(service: AdmissionService, opa: _HeldOpa) -> threading.Thread:
    holder = threading.Thread(target=service.answer, args=("validate", review()))
    holder.start()
    assert opa.asked.wait(5)
    return holder


def test_a_request_waits_for_a_decision_slot_only_within_its_deadline() -> None:
    config = WebhookConfig(opa_url="http://127.0.0.1:1", timeout=0.6, concurrent_decisions=1)
    opa = _HeldOpa()
    service = AdmissionService(config, opa)
    holder = _hold_the_slot(service, opa)
    started = time.monotonic()
    answer = service.answer("validate", review(), arrived=started)
    waited = time.monotonic() - started
    opa.release.set()
    holder.join()
    assert answer["response"]["allowed"] is False
    assert "overloaded" in answer["response"]["status"]["message"]
    assert len(opa.inputs) == 1  # only the holder's decision reached OPA
    # it waited until OPA's whole timeout would no longer fit: 0.6 - 0.1 - 0.25 s
    assert 0.2 <= waited < 0.5


def test_a_request_gets_a_decision_slot_freed_within_its_deadline() -> None:
    config = WebhookConfig(opa_url="http://127.0.0.1:1", timeout=2.0, concurrent_decisions=1)
    opa = _HeldOpa()
    service = AdmissionService(config, opa)
    holder = _hold_the_slot(service, opa)
    threading.Timer(0.1, opa.release.set).start()
    answer = service.answer("validate", review(), arrived=time.monotonic())
    holder.join()
    assert answer["response"]["allowed"] is True
    assert len(opa.inputs) == 2


def test_slow_lookups_leave_no_time_to_ask_opa() -> None:
    ticks = iter([0.0] * 6 + [2.5, 2.5])  # the policy lookups return at 2.5 s
    opa = FakeOpa(decision())
    service = AdmissionService(CONFIG, opa, FakeKube(), clock=lambda: next(ticks))
    answer = service.answer("validate", review(kind="Pod"))
    assert "deadline exceeded before asking OPA" in answer["response"]["status"]["message"]
    assert opa.inputs == []


def test_findings_and_requests_are_counted() -> None:
    answer = decision(
        violations=(finding("finops.cpu"),),
        warnings=(finding("finops.replicas", "warn"),),
        dryrun=(finding("finops.hpa", "dryrun"),),
    )
    counters = {
        ("finops.cpu", "deny"): _sample(metrics.DECISIONS, rule="finops.cpu", action="deny"),
        ("finops.hpa", "dryrun"): _sample(metrics.DECISIONS, rule="finops.hpa", action="dryrun"),
    }
    requests = _sample(metrics.REQUESTS, endpoint="validate", operation="CREATE", allowed="false")
    service = AdmissionService(CONFIG, FakeOpa(answer))
    service.answer("validate", review())
    service.answer("mutate", review())  # the mutating pass must not count findings twice
    for (rule, action), before in counters.items():
        assert _sample(metrics.DECISIONS, rule=rule, action=action) == before + 1
    after = _sample(metrics.REQUESTS, endpoint="validate", operation="CREATE", allowed="false")
    assert after == requests + 1


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def decision_lines() -> Iterator[list[str]]:
    """The decision log lines written during the test."""
    handler = _Lines()
    logger = logging.getLogger(decision_log.LOGGER_NAME)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)


def test_one_json_log_line_per_decision_without_the_object(decision_lines: list[str]) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "ai"},
        "data": {"password": "aHVudGVyMg=="},
    }
    service = AdmissionService(CONFIG, FakeOpa(decision(dryrun=(finding("x.y", "dryrun"),))))
    service.answer("validate", review(kind="Secret", obj=secret))
    (line,) = decision_lines
    entry = json.loads(line)
    assert entry["uid"] == "3f1c-uid"
    assert entry["kind"] == "Secret"
    assert (entry["namespace"], entry["name"], entry["operation"]) == ("ai", "web", "CREATE")
    assert entry["user"] == "alice"
    assert entry["allowed"] is True
    assert entry["dryrun"] == ["x.y"]
    assert isinstance(entry["duration_ms"], float)
    assert "aHVudGVyMg==" not in line


def test_a_decision_line_stays_short_whatever_the_request_names(
    decision_lines: list[str],
) -> None:
    # The API server sends names of at most 253 characters, but anyone reaching the port can
    # send more: the line (one JSON document per line, which log shippers split beyond 16 KiB)
    # quotes each name cut short, with its length. The answer still echoes the uid whole.
    sent = review()
    request = sent["request"]
    for field in ("uid", "namespace", "name"):
        request[field] = field[0] * 2_000_000
    request["kind"]["kind"] = "k" * 2_000_000
    request["userInfo"]["username"] = "u" * 2_000_000
    answer = AdmissionService(CONFIG, FakeOpa(decision())).answer("validate", sent)
    assert answer["response"]["uid"] == request["uid"]
    (line,) = decision_lines
    assert len(line) < 4_000
    entry = json.loads(line)
    for field, value in (("uid", "u"), ("namespace", "n"), ("name", "n"), ("kind", "k")):
        assert entry[field] == value * decision_log.MAX_NAME_CHARS + "… (2000000 characters)"
    assert entry["user"] == "u" * decision_log.MAX_NAME_CHARS + "… (2000000 characters)"
    request.update(uid="u" * 253, name="n" * 253)  # as long as the API server sends: whole
    AdmissionService(CONFIG, FakeOpa(decision())).answer("validate", sent)
    entry = json.loads(decision_lines[1])
    assert (entry["uid"], entry["name"]) == ("u" * 253, "n" * 253)


def test_ready_needs_opa_health_and_a_defined_decision() -> None:
    assert AdmissionService(CONFIG, FakeOpa(decision())).ready() == (True, "ready")
    assert AdmissionService(CONFIG, FakeOpa(decision(), healthy=False)).ready()[0] is False
    not_loaded = FakeOpa(OpaError("OPA has no value at data.edgepolicy.admission.decision"))
    ready, reason = AdmissionService(CONFIG, not_loaded).ready()
    assert not ready and "policy not loaded" in reason


def test_ready_checks_bundles_only_when_fed_by_bundles() -> None:
    opa = FakeOpa(decision())
    AdmissionService(WebhookConfig(opa_url="http://o:1", bundles=True), opa).ready()
    AdmissionService(CONFIG, opa).ready()
    assert opa.health_bundles == [True, False]


def test_an_admitted_policy_is_validated_and_replaces_the_stored_one() -> None:
    opa, kube = FakeOpa(decision()), FakeKube()
    admitted = _budget("ai", {"costLimits": {"maxCPUCores": 0}})
    AdmissionService(CONFIG, opa, kube).answer(
        "validate", review(kind="FinOpsPolicy", obj=admitted)
    )
    context = opa.inputs[0]["context"]
    assert context["policies"] == []
    [record] = context["invalidPolicies"]
    assert (record["namespace"], record["name"]) == ("ai", "budget")
    assert {e["field"] for e in record["errors"]} == {
        "spec.targetWorkloadSelector",
        "spec.costLimits.maxCPUCores",
    }


def _model_policy(name: str, public_key: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "ModelPolicy",
        "metadata": {"name": name, "namespace": "ai"},
        "spec": {
            "targetWorkloadSelector": {},
            "signature": {"required": True, "publicKeys": [public_key]},
        },
    }


def _signed_deployment(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ai"},
        "spec": {"template": {"metadata": {"annotations": annotations}}},
    }


def test_a_context_sent_in_the_review_is_never_trusted(signed_model: Any) -> None:
    forged = {
        "models": {"ai/trusted": {"default": {"verified": True, "facts": '{"model": {}}'}}},
        "policies": [{"kind": "FinOpsPolicy", "metadata": {"name": "forged"}}],
        "workloads": [{"kind": "Deployment"}],
    }
    sent = {**review(), "context": forged}
    opa, kube = (
        FakeOpa(decision()),
        FakeKube(models=[_model_policy("trusted", signed_model.public_key)]),
    )
    AdmissionService(CONFIG, opa, kube).answer("validate", sent)
    context = opa.inputs[0]["context"]
    assert "models" not in context  # the object names no model: nothing verified
    assert [p["metadata"]["name"] for p in context["policies"]] == ["budget", "trusted"]
    assert "forged" not in json.dumps(context)


def test_models_are_verified_against_every_model_policy_of_the_namespace(
    signed_model: Any, other_signed_model: Any
) -> None:
    annotations = {
        "models.apexlogic.com/signature": signed_model.signature,
        "models.apexlogic.com/facts": signed_model.facts,
    }
    opa = FakeOpa(decision())
    opa.data["edgepolicy/policies/model/ai"] = {
        "from-bundle": _model_policy("from-bundle", other_signed_model.public_key)
    }
    kube = FakeKube(models=[_model_policy("from-cluster", signed_model.public_key)])
    forged = {"models": {"ai/from-bundle": {"default": {"verified": True, "facts": "{}"}}}}
    sent = {**review(obj=_signed_deployment(annotations)), "context": forged}
    AdmissionService(CONFIG, opa, kube).answer("validate", sent)
    models = opa.inputs[0]["context"]["models"]
    assert models["ai/from-cluster"]["default"]["verified"] is True
    assert models["ai/from-cluster"]["default"]["facts"] == signed_model.facts
    assert models["ai/from-bundle"]["default"]["verified"] is False
    assert "facts" not in models["ai/from-bundle"]["default"]


def test_the_signature_configmap_is_read_through_the_cluster_lookups(signed_model: Any) -> None:
    annotations = {
        "models.apexlogic.com/signature-configmap": "model-sig",
        "models.apexlogic.com/facts": signed_model.facts,
    }
    configmap = {"kind": "ConfigMap", "data": {"signature": signed_model.signature}}
    kube = FakeKube(
        models=[_model_policy("p", signed_model.public_key)], configmaps={"model-sig": configmap}
    )
    opa = FakeOpa(decision())
    AdmissionService(CONFIG, opa, kube).answer(
        "validate", review(obj=_signed_deployment(annotations))
    )
    assert ("configmap", "ai", "model-sig") in kube.calls
    assert opa.inputs[0]["context"]["models"]["ai/p"]["default"]["verified"] is True


def test_no_configmap_is_read_without_a_model_policy(signed_model: Any) -> None:
    annotations = {"models.apexlogic.com/signature-configmap": "model-sig"}
    kube, opa = FakeKube(), FakeOpa(decision())
    AdmissionService(CONFIG, opa, kube).answer(
        "validate", review(obj=_signed_deployment(annotations))
    )
    assert [call[0] for call in kube.calls] == ["policies", "autoscalers"]
    assert "models" not in opa.inputs[0]["context"]


def test_objects_naming_no_model_cost_no_opa_data_read() -> None:
    opa = FakeOpa(decision())
    AdmissionService(CONFIG, opa, FakeKube()).answer("validate", review())
    assert opa.queries == []
