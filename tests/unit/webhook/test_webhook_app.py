"""The HTTP views, through Flask's test client with a stand-in OPA."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from edgepolicy.webhook import decision_log
from edgepolicy.webhook.admission import AdmissionService
from edgepolicy.webhook.app import create_app
from edgepolicy.webhook.config import WebhookConfig
from flask.testing import FlaskClient
from webhook_builders import decision, finding, review

from edgepolicy.decision import Decision

CONFIG = WebhookConfig(opa_url="http://127.0.0.1:1", max_body_bytes=64 * 1024)


class StubOpa:
    """Always gives ``answer``; ``broken`` makes decide raise an unexpected error."""

    def __init__(self, answer: Decision, *, broken: bool = False, healthy: bool = True) -> None:
        self.answer = answer
        self.broken = broken
        self.healthy = healthy

    def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        if self.broken:
            raise RuntimeError("secret internals")
        return self.answer

    def health(self, *, bundles: bool = False) -> bool:
        return self.healthy


def _client(opa: StubOpa) -> FlaskClient:
    app = create_app(CONFIG, service=AdmissionService(CONFIG, opa))
    return app.test_client()


@pytest.fixture
def client() -> FlaskClient:
    return _client(StubOpa(decision(violations=(finding("finops.cpu"),))))


def test_validate_answers_an_admission_review(client: FlaskClient) -> None:
    response = client.post("/validate", json=review())
    assert response.status_code == 200
    body = response.get_json()
    assert body["response"]["uid"] == "3f1c-uid"
    assert body["response"]["status"]["code"] == 403


def test_mutate_answers_allowed(client: FlaskClient) -> None:
    response = client.post("/mutate", json=review())
    assert response.status_code == 200 and response.get_json()["response"]["allowed"] is True


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"null", json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode()],
)
def test_malformed_reviews_get_400_with_a_json_error(client: FlaskClient, body: bytes) -> None:
    response = client.post("/validate", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("malformed AdmissionReview: ")


@pytest.mark.parametrize("endpoint", ["/validate", "/mutate"])
@pytest.mark.parametrize("user_info", ["alice", 5, True, [1], 1.5])
def test_a_user_info_that_is_no_object_gets_400(
    client: FlaskClient, endpoint: str, user_info: object
) -> None:
    document = review()
    document["request"]["userInfo"] = user_info
    response = client.post(endpoint, json=document)
    assert response.status_code == 400
    assert "request.userInfo must be an object" in response.get_json()["error"]


def test_a_body_nested_too_deep_to_parse_gets_400(client: FlaskClient) -> None:
    body = b'{"a":' * 8_000 + b"1" + b"}" * 8_000  # within the test's body size limit
    response = client.post("/validate", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "request body nests" in response.get_json()["error"]


def test_oversized_bodies_get_413_as_json(client: FlaskClient) -> None:
    response = client.post("/validate", data=b"x" * (CONFIG.max_body_bytes + 1))
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_oversized_bodies_without_a_length_get_413(client: FlaskClient) -> None:
    stream = io.BytesIO(b"x" * (CONFIG.max_body_bytes + 1))
    response = client.post(  # sent without Content-Length (chunked)
        "/validate", input_stream=stream, environ_overrides={"CONTENT_LENGTH": ""}
    )
    assert response.status_code == 413


def test_unknown_routes_and_methods_get_json_errors(client: FlaskClient) -> None:
    assert client.get("/nowhere").get_json()["error"].startswith("Not Found")
    response = client.get("/validate")
    assert response.status_code == 405 and "error" in response.get_json()
    assert response.headers["Allow"] == "POST"


def test_admission_answers_are_json_with_their_length(client: FlaskClient) -> None:
    response = client.post("/mutate", json=review())
    assert response.content_type == "application/json"
    assert response.content_length == len(response.get_data())


def test_unexpected_errors_are_answered_by_the_failure_mode_without_internals() -> None:
    response = _client(StubOpa(decision(), broken=True)).post("/validate", json=review())
    assert response.status_code == 200  # an answer the API server applies, not a 500
    assert "secret internals" not in response.get_data(as_text=True)
    answer = response.get_json()["response"]
    assert answer["uid"] == review()["request"]["uid"]
    assert answer["allowed"] is False
    assert "internal error" in answer["status"]["message"]


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    unready = _client(StubOpa(decision(), healthy=False)).get("/readyz")
    assert unready.status_code == 503
    assert unready.get_json()["reason"] == "OPA is unreachable"


def test_metrics_are_prometheus_text(client: FlaskClient) -> None:
    client.post("/validate", json=review())
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert 'edgepolicy_admission_requests_total{allowed="false",endpoint="validate"' in text
    assert 'edgepolicy_decisions_total{action="deny",rule="finops.cpu"}' in text
    assert "edgepolicy_admission_duration_seconds_bucket" in text


def test_a_400_quotes_a_huge_value_cut_short_and_is_logged_and_counted() -> None:
    config = dataclasses.replace(CONFIG, max_body_bytes=4 * 1024 * 1024)
    opa = StubOpa(decision())
    client = create_app(config, service=AdmissionService(config, opa)).test_client()
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger(decision_log.LOGGER_NAME)
    log.addHandler(handler)
    document = review()
    document["apiVersion"] = "v" * 2_000_000
    document["request"]["object"]["spec"] = {"token": "s3cr3t-in-the-object"}
    before = _rejected(client, "not-admission-review")
    try:
        response = client.post("/validate", json=document)
    finally:
        log.removeHandler(handler)
    assert response.status_code == 400
    assert len(response.get_data()) < 400
    error = response.get_json()["error"]
    assert "'" + "v" * 99 + "… (2000002 characters)" in error
    assert response.get_json()["uid"] == "3f1c-uid"
    (line,) = [json.loads(line) for line in lines]
    assert line == {
        "event": "rejected",
        "endpoint": "validate",
        "status": 400,
        "reason": "not-admission-review",
        "error": error,
        "uid": "3f1c-uid",
        "bytes": len(json.dumps(document)),
    }
    assert _rejected(client, "not-admission-review") == before + 1


def test_405_and_413_are_counted_by_reason(client: FlaskClient) -> None:
    before = (_rejected(client, "method-not-allowed"), _rejected(client, "too-large"))
    client.get("/mutate")
    client.post("/validate", data=b"x" * (CONFIG.max_body_bytes + 1))
    after = (_rejected(client, "method-not-allowed"), _rejected(client, "too-large"))
    assert after == (before[0] + 1, before[1] + 1)


def _rejected(client: FlaskClient, reason: str) -> Decimal:
    text = client.get("/metrics").get_data(as_text=True)
    series = f'edgepolicy_rejected_requests_total{{reason="{reason}"}} '
    (line,) = [line for line in text.splitlines() if line.startswith(series)]
    return Decimal(line.removeprefix(series))
