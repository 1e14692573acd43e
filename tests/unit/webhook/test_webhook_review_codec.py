"""AdmissionReview parsing and response building (pure functions)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from edgepolicy.webhook import review_codec
from webhook_builders import decision, finding, review

from edgepolicy.decision import Finding


def _body(document: object) -> bytes:
    return json.dumps(document).encode()


def test_parse_keeps_the_request_and_drops_a_forged_context() -> None:
    sent = {**review(), "context": {"models": {"srv": {"quantized": True}}}}
    parsed = review_codec.parse_review(_body(sent))
    assert parsed == review()
    assert "context" not in parsed


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b"null", "must be a JSON object, got null"),
        (b'"review"', "must be a JSON object, got a string"),
        (b'{"apiVersion": NaN}', "NaN is not a JSON value"),
        (b'{"a": [-Infinity]}', "-Infinity is not a JSON value"),
        (_body({**review(), "apiVersion": "admission.k8s.io/v1beta1"}), "admission.k8s.io/v1beta1"),
        (_body({**review(), "kind": "Pod"}), "'Pod'"),
        (_body({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}), "no 'request'"),
    ],
)
def test_parse_rejects_bodies_that_are_not_admission_reviews(body: bytes, expected: str) -> None:
    with pytest.raises(review_codec.MalformedReviewError, match=expected.replace("(", r"\(")):
        review_codec.parse_review(body)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"uid": ""}, "request.uid"),
        ({"uid": None}, "request.uid"),
        ({"operation": "PATCH"}, "request.operation must be one of"),
        ({"kind": "Deployment"}, "request.kind"),
        ({"object": None}, "request.object must be an object for CREATE"),
        ({"namespace": 7}, "request.namespace"),
        ({"userInfo": "alice"}, "request.userInfo must be an object"),
        ({"userInfo": 5}, "request.userInfo must be an object"),
        ({"userInfo": True}, "request.userInfo must be an object"),
        ({"userInfo": [1]}, "request.userInfo must be an object"),
        ({"userInfo": 1.5}, "request.userInfo must be an object"),
        ({"userInfo": {"username": 5}}, "request.userInfo.username must be a string"),
        ({"dryRun": "yes"}, "request.dryRun must be a boolean"),
    ],
)
def test_parse_names_the_bad_request_field(change: dict[str, object], expected: str) -> None:
    document = review()
    document["request"].update(change)
    with pytest.raises(review_codec.MalformedReviewError, match=expected):
        review_codec.parse_review(_body(document))


@pytest.mark.parametrize("field", ["object", "oldObject"])
def test_parse_refuses_objects_nested_too_deep(field: str) -> None:
    document = review(operation="UPDATE")
    nested: dict[str, object] = {}
    for _ in range(review_codec.MAX_OBJECT_DEPTH):
        nested = {"a": nested}
    document["request"][field] = {"metadata": {}, "spec": nested}
    with pytest.raises(review_codec.MalformedReviewError, match=f"request.{field} nests more than"):
        review_codec.parse_review(_body(document))


def test_parse_accepts_objects_nested_up_to_the_limit() -> None:
    document = review()
    nested: dict[str, object] = {}
    for _ in range(review_codec.MAX_OBJECT_DEPTH - 2):
        nested = {"a": nested}
    document["request"]["object"] = {"spec": nested}
    assert review_codec.parse_review(_body(document)) == document


@pytest.mark.parametrize("levels", [990, 100_000])
def test_parse_refuses_bodies_nested_too_deep(levels: int) -> None:
    body = b'{"a":' * levels + b"1" + b"}" * levels
    with pytest.raises(review_codec.MalformedReviewError, match="request body nests"):
        review_codec.parse_review(body)


def test_update_needs_the_old_object() -> None:
    document = review("UPDATE")
    document["request"]["oldObject"] = None
    with pytest.raises(review_codec.MalformedReviewError, match="oldObject"):
        review_codec.parse_review(_body(document))


def test_delete_needs_no_object() -> None:
    assert review_codec.parse_review(_body(review("DELETE")))["request"]["operation"] == "DELETE"


def _own(rule: str, message: str, action: str = "deny") -> Finding:
    """A finding whose message is written as the library writes them (it starts with the rule)."""
    return Finding(rule=rule, policy="ai/budget", message=f"{rule}: {message}", action=action)


def test_denial_lists_every_violation_as_the_rules_word_it() -> None:
    denied = decision(
        violations=(
            _own("finops.cpu", "Deployment ai/web: 12 cores exceed maxCPUCores 8; lower it"),
            finding("repo.custom", container="srv"),
        )
    )
    answer = review_codec.validate_response("u1", denied)
    response = answer["response"]
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert response["uid"] == "u1"
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["message"].splitlines() == [
        "edgepolicy denied the request: 2 violations",
        "- finops.cpu: Deployment ai/web: 12 cores exceed maxCPUCores 8; lower it",
        # a message that does not name its rule (a repository's own rule) gets rule and policy
        "- repo.custom [ai/budget] (container srv): repo.custom is over the limit; lower it",
    ]
    assert response["auditAnnotations"] == {
        "decision": "denied",
        "rules": "finops.cpu,repo.custom",
        "policies": "ai/budget",
    }


def test_allowed_answer_carries_warnings_but_not_dryrun_findings() -> None:
    allowed = decision(
        warnings=(_own("finops.replicas", "5 pods; set spec.replicas to at most 3", "warn"),),
        dryrun=(finding("finops.hpa", "dryrun"),),
    )
    response = review_codec.validate_response("u2", allowed)["response"]
    assert response["allowed"] is True
    assert "status" not in response
    assert response["warnings"] == ["finops.replicas: 5 pods; set spec.replicas to at most 3"]
    assert "finops.hpa" not in json.dumps(response["warnings"])
    # dryrun findings are recorded for audit, never shown to the user.
    assert response["auditAnnotations"]["rules"] == "finops.hpa,finops.replicas"


def test_warnings_keep_what_to_change_up_to_what_kubernetes_shows() -> None:
    message = "x" * 400 + "; set spec.replicas to at most 3"
    (text,) = review_codec.warning_texts([_own("finops.replicas", message, "warn")])
    assert text == f"finops.replicas: {message}"
    (cut,) = review_codec.warning_texts([_own("finops.replicas", "y" * 5000, "warn")])
    assert len(cut) == review_codec.MAX_WARNING_CHARS and cut.endswith("...")


def test_warnings_carry_no_control_characters() -> None:
    # The API server silently drops a warning holding one (its Warning header cannot carry it).
    (text,) = review_codec.warning_texts([_own("finops.replicas", "a\nb\tc\x7fd\x85e", "warn")])
    assert text == "finops.replicas: a b c d e"


def test_mutate_encodes_the_patch_as_base64_json_patch() -> None:
    patches = (
        {"op": "add", "path": "/metadata/labels/finops.apexlogic.com~1policy", "value": "b"},
    )
    response = review_codec.mutate_response("u3", decision(patches=patches))["response"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == list(patches)


def test_mutate_never_denies_and_omits_an_empty_patch() -> None:
    response = review_codec.mutate_response("u4", decision(violations=(finding("finops.cpu"),)))
    assert response["response"]["allowed"] is True
    assert "patch" not in response["response"] and "patchType" not in response["response"]


def test_untouched_operations_are_allowed_plainly() -> None:
    assert review_codec.untouched_response("u5") == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u5", "allowed": True},
    }


def test_fail_closed_denies_with_the_reason() -> None:
    response = review_codec.unavailable_response("u6", "OPA timed out", fail_open=False)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 503
    assert "OPA timed out" in response["status"]["message"]
    assert "--fail-open" in response["status"]["message"]


def test_fail_open_admits_with_a_warning() -> None:
    response = review_codec.unavailable_response("u7", "OPA timed out", fail_open=True)["response"]
    assert response["allowed"] is True
    assert "OPA timed out" in response["warnings"][0]
    assert response["auditAnnotations"] == {"decision": "fail-open"}


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (b"9" * 4_301, "an integer of more than 4300 digits"),
        (b"-" + b"9" * 100_000, "an integer of more than 4300 digits"),
        (b"1e309", "the number 1e309, beyond the range of a 64-bit float"),
        (b"-2.5E+400", "the number -2.5E+400, beyond the range"),
    ],
)
def test_numbers_python_cannot_carry_are_malformed(number: bytes, expected: str) -> None:
    body = _body(review()).replace(b'"name": "web"', b'"name": "web", "replicas": ' + number, 1)
    with pytest.raises(review_codec.MalformedReviewError, match=re.escape(expected)) as raised:
        review_codec.parse_review(body)
    assert raised.value.reason == review_codec.NUMBER_OUT_OF_RANGE
    assert len(str(raised.value)) < 200
    # The body is JSON (only Python cannot hold the number): the answer still echoes the uid.
    assert raised.value.uid == "3f1c-uid"


@pytest.mark.parametrize("number", [b"9" * 4_301, b"1e309"])
def test_a_number_out_of_range_as_the_uid_is_not_echoed(number: bytes) -> None:
    body = _body(review()).replace(b'"3f1c-uid"', number, 1)
    with pytest.raises(review_codec.MalformedReviewError) as raised:
        review_codec.parse_review(body)
    assert raised.value.reason == review_codec.NUMBER_OUT_OF_RANGE
    assert raised.value.uid is None


def test_the_largest_readable_numbers_are_kept() -> None:
    body = _body(review()).replace(b'"name": "web"', b'"name": "web", "n": [' + b"9" * 4_300
                                   + b", 1.7e308]", 1)  # fmt: skip
    (obj_number, float_number) = review_codec.parse_review(body)["request"]["n"]
    assert obj_number == int("9" * 4_300) and float_number == 1.7e308


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"operation": "X" * 5_000}, "'" + "X" * 99 + "… (5002 characters)"),
        ({"operation": {"a": "b" * 5_000}}, "got an object"),
        ({"operation": ["c" * 5_000]}, "got an array"),
    ],
)
def test_quoted_values_are_cut_short(change: dict[str, object], shown: str) -> None:
    document = review()
    document["request"].update(change)
    with pytest.raises(review_codec.MalformedReviewError) as raised:
        review_codec.parse_review(_body(document))
    assert shown in str(raised.value) and len(str(raised.value)) < 250
    assert raised.value.uid == "3f1c-uid"
