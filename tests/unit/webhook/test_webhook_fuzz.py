"""Property-based fuzzing of the webhook (Hypothesis): odd AdmissionReviews against the real
Flask application deciding through a real OPA with the shipped library and the examples'
policies. No answer is an HTTP 5xx, the uid is echoed wherever one was given, and a mutation
that keeps the object's meaning never turns a denial into an allowed answer (the strategies and
the checks are bench/admission_fuzz.py's, which runs many more cases against `edgepolicy serve`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from edgepolicy.webhook.app import create_app
from edgepolicy.webhook.config import WebhookConfig
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings

from bench.admission_fuzz import FuzzCase, fuzz_cases, policy_data, problems, seed_reviews
from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.opa_process import OpaProcess

SEEDS = [review for _, review in seed_reviews()]
# EDGEPOLICY_FUZZ_EXAMPLES raises the number of cases for a longer local run.
EXAMPLES = int(os.environ.get("EDGEPOLICY_FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def client() -> Iterator[FlaskClient]:
    with OpaProcess(find_opa(), paths=[library_path()], data=policy_data()) as opa:
        app = create_app(WebhookConfig(opa_url=opa.url, timeout=10.0))
        yield app.test_client()


@pytest.fixture(scope="module")
def seed_verdicts(client: FlaskClient) -> list[bool]:
    """/validate's verdict on every unmutated seed (some allowed, some denied)."""
    verdicts = []
    for review in SEEDS:
        response = client.post("/validate", json=review)
        assert response.status_code == 200, response.get_data(as_text=True)
        verdicts.append(bool(response.get_json()["response"]["allowed"]))
    assert True in verdicts and False in verdicts
    return verdicts


def _post(client: FlaskClient, case: FuzzCase) -> tuple[int, Any]:
    response = client.post(f"/{case.endpoint}", data=case.body, content_type="application/json")
    try:
        return response.status_code, json.loads(response.get_data())
    except ValueError:
        return response.status_code, None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(case=fuzz_cases(SEEDS))
def test_odd_reviews_never_get_a_5xx_lose_the_uid_or_turn_a_denial_into_an_allow(
    client: FlaskClient, seed_verdicts: list[bool], case: FuzzCase
) -> None:
    status, answer = _post(client, case)
    assert problems(case, status, answer, seed_verdicts[case.seed]) == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"7" * 4_301, "number-out-of-range"),
        (b"-" + b"7" * 50_000, "number-out-of-range"),
        (b"1e400", "number-out-of-range"),
        (b"[" * 5_000 + b"]" * 5_000, "too-deep"),
        (b"NaN", "not-json"),
    ],
)
def test_each_known_escape_is_a_small_400_counted_by_its_reason(
    client: FlaskClient, raw: bytes, reason: str
) -> None:
    review = json.loads(json.dumps(SEEDS[0]))
    review["request"]["object"]["spec"] = "PLACEHOLDER"
    body = json.dumps(review).encode().replace(b'"PLACEHOLDER"', raw)
    before = _rejected(client, reason)
    response = client.post("/validate", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"].startswith("malformed AdmissionReview: ")
    assert len(response.get_data()) < 300
    assert _rejected(client, reason) == before + 1
    if reason == "number-out-of-range":  # still JSON: the uid it gives is echoed
        assert response.get_json()["uid"] == review["request"]["uid"]


def _rejected(client: FlaskClient, reason: str) -> Decimal:
    text = client.get("/metrics").get_data(as_text=True)
    series = f'edgepolicy_rejected_requests_total{{reason="{reason}"}} '
    (line,) = [line for line in text.splitlines() if line.startswith(series)]
    return Decimal(line.removeprefix(series))
