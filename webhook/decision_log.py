"""One structured JSON log line per admission decision, and per request refused as malformed.

The line names the request (uid, kind, namespace/name, operation, user; each cut to
:data:`MAX_NAME_CHARS`) and the outcome (allowed, rule ids by action, duration). It never
contains the object, the old object or any field value of them: Secrets and environment
variables pass through admission. A refused request's line
carries the reason and the error message (whose quoted values are cut short), never the body.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from edgepolicy import json_codec
from edgepolicy.decision import Decision

LOGGER_NAME = "edgepolicy.webhook.decisions"
_LOG = logging.getLogger(LOGGER_NAME)
# The longest uid, kind, namespace, name or user a line quotes whole: longer than any the API
# server sends (a name has at most 253 characters, a service account's user 339), so only a
# crafted request is cut, and a line stays short (log shippers split lines beyond 16 KiB).
MAX_NAME_CHARS = 512


def configure(level: int = logging.INFO) -> None:
    """Send decision lines, unadorned, to stderr (one JSON document per line)."""
    if any(getattr(handler, "_edgepolicy", False) for handler in _LOG.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._edgepolicy = True  # type: ignore[attr-defined]
    _LOG.addHandler(handler)
    _LOG.setLevel(level)
    _LOG.propagate = False


def record(
    *,
    endpoint: str,
    request: Mapping[str, Any],
    allowed: bool,
    duration_ms: float,
    decision: Decision | None = None,
    error: str | None = None,
    patched: bool = False,
) -> dict[str, Any]:
    """Build the log record of one answered AdmissionReview (no object content)."""
    kind = request.get("kind") or {}
    user = (request.get("userInfo") or {}).get("username")
    entry: dict[str, Any] = {
        "event": "admission",
        "endpoint": endpoint,
        "uid": _cut(request.get("uid")),
        "kind": _cut(kind.get("kind") if isinstance(kind, Mapping) else None),
        "namespace": _cut(request.get("namespace")),
        "name": _cut(request.get("name") or _generated_name(request)),
        "operation": request.get("operation"),
        "user": _cut(user),
        "dryRun": bool(request.get("dryRun")),
        "allowed": allowed,
        "duration_ms": round(duration_ms, 3),
    }
    if decision is not None:
        entry["policies"] = sorted(decision.policies)
        if endpoint == "validate":  # /mutate never denies: its findings decide nothing
            entry["deny"] = sorted({finding.rule for finding in decision.violations})
            entry["warn"] = sorted({finding.rule for finding in decision.warnings})
            entry["dryrun"] = sorted({finding.rule for finding in decision.dryrun})
    if patched:
        entry["patched"] = True
    if error is not None:
        entry["error"] = error
    return entry


def rejection(
    *,
    endpoint: str,
    status: int,
    reason: str,
    error: str,
    uid: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """Build the log record of a request answered with an HTTP error (400, 405, 413): the
    reason, the message and, when known, the request's uid and body size (no body content)."""
    entry: dict[str, Any] = {
        "event": "rejected",
        "endpoint": endpoint,
        "status": status,
        "reason": reason,
        "error": error,
    }
    if uid is not None:
        entry["uid"] = uid
    if size is not None:
        entry["bytes"] = size
    return entry


def _cut(value: Any) -> Any:
    """``value``, or a string longer than :data:`MAX_NAME_CHARS` cut to it (an ellipsis and
    the length mark the cut)."""
    if isinstance(value, str) and len(value) > MAX_NAME_CHARS:
        return f"{value[:MAX_NAME_CHARS]}… ({len(value)} characters)"
    return value


def _generated_name(request: Mapping[str, Any]) -> str | None:
    obj = request.get("object")
    if not isinstance(obj, Mapping):
        return None
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    name = metadata.get("name") or metadata.get("generateName")
    return name if isinstance(name, str) else None


def emit(entry: Mapping[str, Any]) -> None:
    """Write one decision line."""
    _LOG.info(json_codec.dumps(entry, sort_keys=True).decode())
