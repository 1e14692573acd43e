"""Prometheus metrics of the webhook.

Under gunicorn every worker is a process, so the metrics use prometheus_client's multiprocess
mode: ``edgepolicy serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a private temporary directory
before any worker starts, and :func:`exposition` merges the workers' files. Without that
variable (unit tests, a single process) the default registry is served.
"""

from __future__ import annotations

import os

from edgepolicy.webhook.review_codec import MALFORMED_REASONS
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from edgepolicy.decision import Decision

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "edgepolicy_admission_requests",
    "AdmissionReviews answered, by endpoint, operation and outcome.",
    ["endpoint", "operation", "allowed"],
)
DECISIONS = Counter(
    "edgepolicy_decisions",
    "Policy findings, by rule id and enforcement action (deny, warn, dryrun).",
    ["rule", "action"],
)
DURATION = Histogram(
    "edgepolicy_admission_duration_seconds",
    "Time to answer an AdmissionReview, from request to response.",
    ["endpoint"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3),
)
OPA_ERRORS = Counter(
    "edgepolicy_opa_errors",
    "Decisions OPA could not give (unavailable: timeout or refused; error: bad answer).",
    ["reason"],
)
KUBE_ERRORS = Counter(
    "edgepolicy_kube_errors",
    "Failed Kubernetes API lookups of decision context (policies, HPA targets).",
)
FAILURE_MODE = Counter(
    "edgepolicy_fail_mode_answers",
    "AdmissionReviews answered without a decision, by mode (fail-open, fail-closed).",
    ["mode"],
)
# Requests whose HTTP itself gunicorn refused (bad request line, header, framing).
MALFORMED_HTTP = "malformed-http"
REJECTED = Counter(
    "edgepolicy_rejected_requests",
    "Requests answered with an HTTP error instead of a decision, by reason: 400 (not-json, "
    "number-out-of-range, too-deep, not-admission-review, invalid-request), 413 (too-large), "
    "405 (method-not-allowed), and HTTP that could not be read at all (malformed-http: 400, "
    "414, 431, 501).",
    ["reason"],
)
REJECTED_REASONS = (*MALFORMED_REASONS, "too-large", "method-not-allowed", MALFORMED_HTTP)
REFUSED_CONNECTIONS = Counter(
    "edgepolicy_webhook_refused_connections",
    "New connections reset before their TLS handshake because the worker was overloaded.",
)
LISTENER_CLOSED_SECONDS = Counter(
    "edgepolicy_webhook_listener_closed_seconds",
    "Seconds a worker kept its listener closed because it was overloaded (new connections went "
    "to other workers, or were refused when every listener was closed).",
)
WORKERS = Gauge(
    "edgepolicy_webhook_workers",
    "Worker processes serving the webhook now (a dead worker's sample is dropped).",
    multiprocess_mode="livesum",
)

# Known label values start at zero, so dashboards and alerts see the series before any failure.
for _reason in ("unavailable", "error"):
    OPA_ERRORS.labels(reason=_reason)
for _mode in ("fail-open", "fail-closed"):
    FAILURE_MODE.labels(mode=_mode)
for _rejected in REJECTED_REASONS:
    REJECTED.labels(reason=_rejected)


def record_findings(decision: Decision) -> None:
    """Count every finding of a decision by rule and action (dryrun findings are counted here)."""
    for finding in (*decision.violations, *decision.warnings, *decision.dryrun):
        DECISIONS.labels(rule=finding.rule, action=finding.action).inc()


def exposition() -> tuple[bytes, str]:
    """Return the metrics page and its content type, merged across workers when multiprocess."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_alive() -> None:
    """Count this process among the live workers (gunicorn's ``post_worker_init`` hook)."""
    WORKERS.set(1)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live-only samples (gunicorn's ``child_exit`` hook)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
