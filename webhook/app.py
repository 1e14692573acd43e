"""The Flask application: the webhook's HTTP views (the only module that imports Flask).

Routes: ``POST /validate`` and ``POST /mutate`` (AdmissionReview v1), ``GET /healthz`` (alive),
``GET /readyz`` (decisions possible), ``GET /metrics`` (Prometheus). Every error is a JSON body
``{"error": ...}``; a malformed AdmissionReview gets HTTP 400, never a 500 or a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from edgepolicy.opa_client import OpaClient
from webhook import decision_log, lookups, metrics, reviews
from webhook.admission import AdmissionService
from webhook.config import WebhookConfig

_LOG = logging.getLogger("edgepolicy.webhook")
# Set by webhook.server's worker: when the request arrived (time.monotonic()).
ARRIVAL_KEY = "edgepolicy.arrived"


def create_app(config: WebhookConfig, *, service: AdmissionService | None = None) -> Flask:
    """Return the webhook application.

    Without ``service``, one is built from ``config``: a pooled OPA client and, when a kubeconfig
    is given or the process runs in a cluster, a Kubernetes client for decision context.

    Raises:
        UsageError: the kubeconfig or service-account credentials cannot be used.
        OpaError: ``config.opa_url`` is not an http(s) URL.
    """
    if service is None:
        kube_client = lookups.connect(config.kubeconfig, cache_ttl=config.kube_cache_seconds)
        opa = OpaClient(config.opa_url, timeout=config.opa_timeout(kube_client is not None))
        service = AdmissionService(config, opa, kube_client)
    decision_log.configure()
    app = Flask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    _register_views(app, service)
    _register_error_handlers(app)
    return app


def _register_views(app: Flask, service: AdmissionService) -> None:
    def admit(endpoint: str) -> tuple[Response, int]:
        try:
            review = reviews.parse_review(request.get_data(cache=False))
        except reviews.MalformedReviewError as error:
            return jsonify(error=f"malformed AdmissionReview: {error}"), 400
        arrived = request.environ.get(ARRIVAL_KEY)
        return jsonify(service.answer(endpoint, review, arrived=arrived)), 200

    @app.post("/validate")
    def validate() -> tuple[Response, int]:
        return admit("validate")

    @app.post("/mutate")
    def mutate() -> tuple[Response, int]:
        return admit("mutate")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify(status="ok"), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        ready, reason = service.ready()
        return jsonify(status="ready" if ready else "not ready", reason=reason), (
            200 if ready else 503
        )

    @app.get("/metrics")
    def metrics_page() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        return jsonify(error=f"{error.name}: {error.description}"), code

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        # Logged for operators with its stack; the caller only learns that it failed.
        _LOG.exception("unexpected error answering %s %s", request.method, request.path)
        return jsonify(error="internal error: the webhook could not answer this request"), 500
