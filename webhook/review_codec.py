"""AdmissionReview v1 in and out: validating requests and building responses (pure functions).

Kubernetes payloads stay plain dicts with the API's camelCase keys. Nothing here talks to OPA,
Kubernetes or HTTP; :mod:`edgepolicy.webhook.admission` decides and :mod:`edgepolicy.webhook.app`
serves.
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from edgepolicy import json_codec
from edgepolicy.decision import Decision, Finding
from edgepolicy.errors import InputError
from edgepolicy.input_builder import ADMISSION_API_VERSION
from edgepolicy.manifests import MAX_DEPTH

API_VERSION = ADMISSION_API_VERSION
KIND = "AdmissionReview"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
EVALUATED_OPERATIONS = ("CREATE", "UPDATE")
DENIED_CODE = 403
UNAVAILABLE_CODE = 503
# The API server passes each warning whole while all of a request's warnings together stay within
# 4096 characters (beyond that it cuts each to 256 itself), so no longer warning can be shown.
MAX_WARNING_CHARS = 4096
# C0 and C1 control characters: the API server drops a warning holding one.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# How deep an object may nest: as deep as `edgepolicy check` reads manifests, so CI and admission
# accept the same objects (and far below where parsing or encoding would recurse too deep).
MAX_OBJECT_DEPTH = MAX_DEPTH
_TOO_DEEP_BODY = f"request body nests more than {MAX_OBJECT_DEPTH + 2} levels deep"
# A value quoted in an error message is cut to this many characters: the answer to a bad request
# stays small whatever the request held (a 2 MB apiVersion once came back whole).
MAX_QUOTED_CHARS = 100

# Why a body was refused (the ``reason`` label of the rejected-requests counter: a fixed set).
NOT_JSON = "not-json"
NUMBER_OUT_OF_RANGE = "number-out-of-range"
TOO_DEEP = "too-deep"
NOT_ADMISSION_REVIEW = "not-admission-review"
INVALID_REQUEST = "invalid-request"
MALFORMED_REASONS = (NOT_JSON, NUMBER_OUT_OF_RANGE, TOO_DEEP, NOT_ADMISSION_REVIEW, INVALID_REQUEST)


class MalformedReviewError(InputError):
    """The request body is not an AdmissionReview admission.k8s.io/v1 the webhook can answer.

    ``reason`` is one of :data:`MALFORMED_REASONS`; ``uid`` is the request's uid when the body
    carried one as a string of at most ``MAX_QUOTED_CHARS`` characters (else None), so the
    answer can echo it and stay small.
    """

    def __init__(self, message: str, *, reason: str = INVALID_REQUEST) -> None:
        super().__init__(message)
        self.reason = reason
        self.uid: str | None = None


def quoted(value: Any) -> str:
    """Return ``value`` as an error message quotes it: a scalar's ``repr`` cut to
    ``MAX_QUOTED_CHARS`` characters (an ellipsis marks the cut), a container by its JSON type."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    if len(text) > MAX_QUOTED_CHARS:
        return f"{text[:MAX_QUOTED_CHARS]}… ({len(text)} characters)"
    return text


def parse_review(body: bytes) -> dict[str, Any]:
    """Parse and check an AdmissionReview request body.

    Returns a fresh review holding only ``apiVersion``, ``kind`` and ``request``: anything else a
    caller sent (for example a forged ``context`` with model facts) is dropped, because only the
    webhook itself fills in the decision context.

    Raises:
        MalformedReviewError: the body is not JSON (or holds a number no JSON reader can
            represent: an integer longer than Python reads, a float beyond its range), or not an
            AdmissionReview v1 with a request carrying a uid, a known operation, a kind and (for
            CREATE and UPDATE) an object. Values quoted in its message are cut short.
    """
    try:
        document = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedReviewError(
            f"request body is not valid JSON: {error}", reason=NOT_JSON
        ) from error
    except MalformedReviewError as error:  # a float beyond range (see _finite_float)
        error.uid = _uid_despite_numbers(body)
        raise
    except ValueError as error:  # what remains: an integer longer than Python converts
        refused = MalformedReviewError(
            f"request body holds an integer of more than {sys.get_int_max_str_digits()} digits",
            reason=NUMBER_OUT_OF_RANGE,
        )
        refused.uid = _uid_despite_numbers(body)
        raise refused from error
    except RecursionError as error:
        raise MalformedReviewError(_TOO_DEEP_BODY, reason=TOO_DEEP) from error
    try:
        if body.count(b"{") + body.count(b"[") > MAX_OBJECT_DEPTH:  # else it cannot nest too deep
            _check_depth(document)
        return _checked_review(document)
    except MalformedReviewError as error:
        error.uid = _echoable_uid(document)
        raise


def _checked_review(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise MalformedReviewError(
            f"request body must be a JSON object, got {_json_type(document)}",
            reason=NOT_ADMISSION_REVIEW,
        )
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise MalformedReviewError(
            f"expected apiVersion {API_VERSION!r} and kind {KIND!r}, got "
            f"{quoted(document.get('apiVersion'))} and {quoted(document.get('kind'))}",
            reason=NOT_ADMISSION_REVIEW,
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise MalformedReviewError(
            "AdmissionReview has no 'request' object", reason=NOT_ADMISSION_REVIEW
        )
    _check_request(request)
    return {"apiVersion": API_VERSION, "kind": KIND, "request": request}


def _json_type(value: Any) -> str:
    """Name the JSON type of a parsed value, as a message to the sender says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _echoable_uid(document: Any) -> str | None:
    """The ``request.uid`` of a refused body when it is a string short enough to echo."""
    request = document.get("request") if isinstance(document, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    return uid if isinstance(uid, str) and 0 < len(uid) <= MAX_QUOTED_CHARS else None


def _uid_despite_numbers(body: bytes) -> str | None:
    """The echoable uid of a body refused for a number out of range: the body is JSON (only
    Python cannot hold the number), so it is read again with every number left unconverted."""
    try:
        document = json.loads(
            body, parse_int=_unconverted, parse_float=_unconverted, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError):
        return None
    return _echoable_uid(document)


def _unconverted(text: str) -> None:
    """Read a JSON number as nothing (see :func:`_uid_despite_numbers`)."""
    return None


def _finite_float(text: str) -> float:
    """Read a JSON number with a fraction or exponent, refusing one beyond a float's range
    (Python would read it as infinity, which JSON cannot carry on to OPA)."""
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= MAX_QUOTED_CHARS else f"{text[:MAX_QUOTED_CHARS]}…"
        raise MalformedReviewError(
            f"request body holds the number {shown}, beyond the range of a 64-bit float",
            reason=NUMBER_OUT_OF_RANGE,
        )
    return value


def _check_depth(document: Any) -> None:
    """Refuse a review whose object or old object nests deeper than ``MAX_OBJECT_DEPTH``."""
    if _depth(document, MAX_OBJECT_DEPTH + 2) <= MAX_OBJECT_DEPTH + 2:
        return
    request = document.get("request") if isinstance(document, dict) else None
    for field in ("object", "oldObject"):
        if isinstance(request, dict) and _depth(request.get(field), MAX_OBJECT_DEPTH) > (
            MAX_OBJECT_DEPTH
        ):
            raise MalformedReviewError(
                f"request.{field} nests more than {MAX_OBJECT_DEPTH} levels deep", reason=TOO_DEEP
            )
    raise MalformedReviewError(_TOO_DEEP_BODY, reason=TOO_DEEP)


def _depth(value: Any, limit: int) -> int:
    """How many levels ``value`` nests (a scalar is 1), counted without recursion and only
    until it passes ``limit``."""
    # Level by level: each pass collects the children of the current level (a fifth of the
    # CPU of walking node by node, which mattered for large objects on the admission path).
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            break
        children: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        level = children
    return depth


def _reject_constant(name: str) -> Any:
    """Refuse ``NaN`` and ``Infinity``, which Python's parser accepts but JSON does not have."""
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def _check_request(request: Mapping[str, Any]) -> None:
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReviewError("request.uid must be a non-empty string")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise MalformedReviewError(
            f"request.operation must be one of {', '.join(OPERATIONS)}, got {quoted(operation)}"
        )
    kind = request.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise MalformedReviewError("request.kind must be an object with a 'kind' string")
    if operation in EVALUATED_OPERATIONS and not isinstance(request.get("object"), dict):
        raise MalformedReviewError(f"request.object must be an object for {operation}")
    if operation == "UPDATE" and not isinstance(request.get("oldObject"), dict):
        raise MalformedReviewError("request.oldObject must be an object for UPDATE")
    for field in ("namespace", "name"):
        if request.get(field) is not None and not isinstance(request.get(field), str):
            raise MalformedReviewError(f"request.{field} must be a string")
    user_info = request.get("userInfo")
    if user_info is not None:
        if not isinstance(user_info, dict):
            raise MalformedReviewError("request.userInfo must be an object")
        username = user_info.get("username")
        if username is not None and not isinstance(username, str):
            raise MalformedReviewError("request.userInfo.username must be a string")
    if request.get("dryRun") is not None and not isinstance(request.get("dryRun"), bool):
        raise MalformedReviewError("request.dryRun must be a boolean")


def is_evaluated(request: Mapping[str, Any]) -> bool:
    """Return whether the operation is sent to OPA (CREATE, UPDATE) or allowed untouched."""
    return request.get("operation") in EVALUATED_OPERATIONS


def _describe(finding: Finding) -> str:
    """Return the finding as its rule words it: the library's messages start with the rule id
    and name the object, the policy, the numbers and what to change. A message that does not
    start with its rule (a policy repository's own rule) is prefixed with rule and policy."""
    if finding.message.startswith(f"{finding.rule}: "):
        return finding.message
    where = f" (container {finding.container})" if finding.container else ""
    return f"{finding.rule} [{finding.policy}]{where}: {finding.message}"


def denial_message(violations: Sequence[Finding]) -> str:
    """Return the ``status.message`` of a denial, listing every violation on its own line."""
    count = len(violations)
    header = f"edgepolicy denied the request: {count} violation{'s' if count != 1 else ''}"
    return "\n".join([header, *(f"- {_describe(finding)}" for finding in violations)])


def warning_texts(warnings: Sequence[Finding]) -> list[str]:
    """Return the AdmissionResponse ``warnings`` for warn findings (kubectl prints them)."""
    texts = []
    for finding in warnings:
        text = _CONTROL_CHARACTERS.sub(" ", _describe(finding))
        if len(text) > MAX_WARNING_CHARS:
            text = text[: MAX_WARNING_CHARS - 3] + "..."
        texts.append(text)
    return texts


def audit_annotations(decision: Decision) -> dict[str, str]:
    """Return the ``auditAnnotations``: the deciding rule ids and the matched policies."""
    findings = [*decision.violations, *decision.warnings, *decision.dryrun]
    annotations = {"decision": "allowed" if decision.allowed else "denied"}
    rules = sorted({finding.rule for finding in findings})
    if rules:
        annotations["rules"] = ",".join(rules)
    policies = sorted({*decision.policies, *(finding.policy for finding in findings)})
    if policies:
        annotations["policies"] = ",".join(policies)
    return annotations


def encode_patch(patches: Sequence[Mapping[str, Any]]) -> str:
    """Return a JSONPatch as the base64 string an AdmissionResponse carries."""
    raw = json_codec.dumps(list(patches), sort_keys=True)
    return base64.b64encode(raw).decode("ascii")


def review_response(uid: str, response: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap an AdmissionResponse body (without uid) in an AdmissionReview that echoes ``uid``."""
    return {"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, **response}}


def untouched_response(uid: str) -> dict[str, Any]:
    """Return the answer for operations the webhook does not evaluate (DELETE, CONNECT)."""
    return review_response(uid, {"allowed": True})


def validate_response(uid: str, decision: Decision) -> dict[str, Any]:
    """Return the /validate answer: 403 with every violation when denied, warnings, audit."""
    response: dict[str, Any] = {"allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {
            "code": DENIED_CODE,
            "reason": "Forbidden",
            "message": denial_message(decision.violations),
        }
    warnings = warning_texts(decision.warnings)
    if warnings:
        response["warnings"] = warnings
    response["auditAnnotations"] = audit_annotations(decision)
    return review_response(uid, response)


def mutate_response(uid: str, decision: Decision) -> dict[str, Any]:
    """Return the /mutate answer: always allowed, with the decision's JSONPatch when non-empty.

    Denying is /validate's job, so policy violations never make /mutate refuse an object.
    """
    response: dict[str, Any] = {"allowed": True}
    if decision.patches:
        response["patchType"] = "JSONPatch"
        response["patch"] = encode_patch(decision.patches)
    policies = sorted(decision.policies)
    if policies:
        response["auditAnnotations"] = {"policies": ",".join(policies)}
    return review_response(uid, response)


def unavailable_response(uid: str, reason: str, *, fail_open: bool) -> dict[str, Any]:
    """Return the answer when no decision could be made in time.

    Fail closed (the default) denies with a message saying why; fail open admits the object with
    a warning so the user sees that no policy was applied.
    """
    if fail_open:
        return review_response(
            uid,
            {
                "allowed": True,
                "warnings": [
                    f"edgepolicy: no policy decision ({reason}); admitted unchecked "
                    "because the webhook runs with --fail-open"
                ],
                "auditAnnotations": {"decision": "fail-open"},
            },
        )
    return review_response(
        uid,
        {
            "allowed": False,
            "status": {
                "code": UNAVAILABLE_CODE,
                "reason": "ServiceUnavailable",
                "message": f"edgepolicy could not decide ({reason}); denied because the "
                "webhook fails closed (run it with --fail-open to admit unchecked objects instead)",
            },
            "auditAnnotations": {"decision": "fail-closed"},
        },
    )
