"""The webhook's HTTP views (the only module that knows HTTP; the only one importing Flask).

Routes: ``POST /validate`` and ``POST /mutate`` (AdmissionReview v1), ``GET /healthz`` (alive),
``GET /readyz`` (decisions possible), ``GET /metrics`` (Prometheus). Every error is a JSON body
``{"error": ...}``; a malformed AdmissionReview gets HTTP 400, never a 500 or a stack trace.

The two admission endpoints carry all the load, so they are answered by a thin WSGI layer in
front of Flask (:class:`AdmissionEndpoints`): it reads the body, hands it to the service and
writes the JSON answer, without Flask's request context, routing and response objects, which
cost as much CPU as the rest of an admission. Everything else is a Flask view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from edgepolicy.webhook import decision_log, lookups, metrics, review_codec
from edgepolicy.webhook.admission import AdmissionService
from edgepolicy.webhook.config import WebhookConfig
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from edgepolicy import json_codec
from edgepolicy.opa_client import OpaClient

_LOG = logging.getLogger("edgepolicy.webhook")
# Set by edgepolicy.webhook.gunicorn_server's worker: when the request arrived (time.monotonic()).
ARRIVAL_KEY = "edgepolicy.arrived"
# The application's AdmissionService, in ``Flask.extensions`` (the worker asks it how loaded it is).
SERVICE_KEY = "edgepolicy.admission"
# The application without /validate and /mutate (/healthz, /readyz, /metrics), in ``extensions``.
PROBES_KEY = "edgepolicy.probes"
ADMISSION_PATHS = {"/validate": "validate", "/mutate": "mutate"}
INTERNAL_ERROR = "internal error: the webhook could not answer this request"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_REASONS = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
}


def create_app(config: WebhookConfig, *, service: AdmissionService | None = None) -> Flask:
    """Return the webhook application.

    Without ``service``, one is built from ``config``: a pooled OPA client and, when a kubeconfig
    is given or the process runs in a cluster, a Kubernetes client for decision context. (The
    model-signature libraries are imported by gunicorn's master before it forks the workers:
    :mod:`edgepolicy.webhook.prefork`.)

    Raises:
        UsageError: the kubeconfig or service-account credentials cannot be used.
        OpaError: ``config.opa_url`` is not an http(s) URL.
    """
    if service is None:
        kube_client = lookups.connect(
            config.kubeconfig, context=config.kube_context, cache_ttl=config.kube_cache_seconds
        )
        opa = OpaClient(config.opa_url, timeout=config.opa_timeout(kube_client is not None))
        service = AdmissionService(config, opa, kube_client)
    decision_log.configure()
    app = Flask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions[SERVICE_KEY] = service
    _register_views(app, service)
    _register_error_handlers(app)
    app.extensions[PROBES_KEY] = app.wsgi_app  # Flask's own: the views, no admission endpoints
    app.wsgi_app = AdmissionEndpoints(  # type: ignore[method-assign]
        service, app.wsgi_app, max_body_bytes=config.max_body_bytes
    )
    return app


class AdmissionEndpoints:
    """WSGI middleware answering ``/validate`` and ``/mutate``; other paths go to ``fallback``.

    Answers: 200 with the AdmissionReview, 400 for a malformed one, 405 for another method,
    413 for a body over ``max_body_bytes``, and a logged JSON 500 without internals for an
    unexpected error. Every 400, 405 and 413 is logged (one JSON line naming the reason, never
    the body) and counted by reason.
    """

    def __init__(
        self, service: AdmissionService, fallback: WsgiApp, *, max_body_bytes: int
    ) -> None:
        self._service = service
        self._fallback = fallback
        self._max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request (the WSGI interface)."""
        endpoint = ADMISSION_PATHS.get(environ.get("PATH_INFO", ""))
        if endpoint is None:
            return self._fallback(environ, start_response)
        headers: list[tuple[str, str]] = []
        try:
            status, document = self._admit(endpoint, environ)
        except Exception:
            # Logged for operators with its stack; the caller only learns that it failed.
            _LOG.exception("unexpected error answering POST %s", environ.get("PATH_INFO"))
            status, document = 500, {"error": INTERNAL_ERROR}
        if status == 405:
            headers.append(("Allow", "POST"))
        body = json_codec.dumps(document)
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(f"{status} {_REASONS[status]}", headers)
        return [body]

    def _admit(self, endpoint: str, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if environ.get("REQUEST_METHOD") != "POST":
            message = "Method Not Allowed: only POST is served here"
            return self._rejected(endpoint, 405, "method-not-allowed", message)
        body = self._body(environ)
        if body is None:
            message = (
                f"Request Entity Too Large: an AdmissionReview may have at most "
                f"{self._max_body_bytes} bytes"
            )
            return self._rejected(endpoint, 413, "too-large", message)
        try:
            review = review_codec.parse_review(body)
        except review_codec.MalformedReviewError as error:
            message = f"malformed AdmissionReview: {error}"
            return self._rejected(
                endpoint, 400, error.reason, message, uid=error.uid, size=len(body)
            )
        arrived = environ.get(ARRIVAL_KEY)
        return 200, self._service.answer(endpoint, review, arrived=arrived)

    @staticmethod
    def _rejected(
        endpoint: str,
        status: int,
        reason: str,
        message: str,
        *,
        uid: str | None = None,
        size: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Log and count a request answered with an HTTP error; return its answer (the error,
        and the request's uid when it carried one)."""
        metrics.REJECTED.labels(reason=reason).inc()
        decision_log.emit(
            decision_log.rejection(
                endpoint=endpoint, status=status, reason=reason, error=message, uid=uid, size=size
            )
        )
        document: dict[str, Any] = {"error": message}
        if uid is not None:
            document["uid"] = uid
        return status, document

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """Return the request body, or None when it is longer than allowed (then unread)."""
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > self._max_body_bytes:
            return None
        if length >= 0:
            data: bytes = stream.read(length)
            return data
        data = stream.read(self._max_body_bytes + 1)  # no length given (chunked)
        return None if len(data) > self._max_body_bytes else data


def _register_views(app: Flask, service: AdmissionService) -> None:
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
        return jsonify(error=INTERNAL_ERROR), 500
