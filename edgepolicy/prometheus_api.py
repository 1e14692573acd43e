"""The one module that talks to a Prometheus-compatible HTTP query API (Prometheus, Thanos
Query, Mimir, VictoriaMetrics): instant queries (``/api/v1/query``) and range queries
(``/api/v1/query_range``), always with an explicit evaluation time.

Answers are kept as Prometheus gives them (``vector`` and ``matrix`` results: label dicts and
``[timestamp, "value"]`` pairs); values stay strings until the caller turns them into
:class:`~decimal.Decimal`, so nothing is rounded on the way. Queries are POSTed as forms (long
PromQL does not fit a URL), which all four servers accept.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlencode, urlsplit

import urllib3

from edgepolicy.errors import PrometheusError, UsageError

_API_ERROR_TYPES = {"bad_data", "execution", "timeout", "canceled", "internal", "unavailable"}


class Sample(TypedDict):
    """One series of a ``vector`` result: its labels and ``[unix seconds, "value"]``."""

    metric: dict[str, str]
    value: list[Any]


class Series(TypedDict):
    """One series of a ``matrix`` result: its labels and its ``[unix seconds, "value"]`` pairs."""

    metric: dict[str, str]
    values: list[list[Any]]


@dataclass(frozen=True)
class PrometheusAuth:
    """How to reach the API: a bearer token (inline or read from a file at each request, as a
    projected service-account token is rotated), a CA bundle for TLS, extra headers (e.g.
    ``X-Scope-OrgID`` for a Mimir tenant) and whether to skip TLS verification."""

    bearer_token: str | None = None
    bearer_token_file: Path | None = None
    ca_file: Path | None = None
    headers: Mapping[str, str] | None = None
    insecure_skip_verify: bool = False


def value_of(raw: Any, where: str) -> Decimal:
    """The exact value of a Prometheus sample value string (``"12.5"``, ``"NaN"``, ``"+Inf"``).

    Raises:
        PrometheusError: not a number (``where`` names the query).
    """
    try:
        return Decimal(str(raw))
    except InvalidOperation as error:
        raise PrometheusError(f"{where}: sample value {raw!r} is not a number") from error


class PrometheusClient:
    """Queries one Prometheus-compatible API at ``url`` (its base, e.g.
    ``http://prometheus:9090`` or ``https://mimir/prometheus``). Safe to share between threads.

    Raises (constructor):
        UsageError: the URL is malformed or not http(s), or the CA file cannot be read.
    """

    def __init__(
        self, url: str, *, auth: PrometheusAuth | None = None, timeout: float = 120.0
    ) -> None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - the port is parsed (ValueError: out of range, not a number)
        except ValueError as error:
            raise UsageError(f"Prometheus URL {url!r}: {error}") from error
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"Prometheus URL {url!r}: expected http://HOST[:PORT][/PATH] or https://..."
            )
        if parts.query or parts.fragment:
            raise UsageError(f"Prometheus URL {url!r}: must not carry a query or fragment")
        self.url = url.rstrip("/")
        self._auth = auth or PrometheusAuth()
        self._timeout = timeout
        context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            try:
                context = ssl.create_default_context(
                    cafile=str(self._auth.ca_file) if self._auth.ca_file else None
                )
            except (OSError, ssl.SSLError) as error:
                raise UsageError(f"CA file {self._auth.ca_file}: {error}") from error
            if self._auth.insecure_skip_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self._http = urllib3.PoolManager(
            maxsize=4,
            retries=False,
            timeout=urllib3.Timeout(connect=min(10.0, timeout), read=timeout),
            ssl_context=context,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.clear()

    def query(self, promql: str, at: datetime) -> list[Sample]:
        """Evaluate ``promql`` at ``at``; return its instant vector (a scalar comes back as a
        one-sample vector without labels).

        Raises:
            PrometheusError: unreachable, refused, or an answer that is not an instant vector.
        """
        data = self._call("query", {"query": promql, "time": _unix(at)}, promql)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return [{"metric": {}, "value": result}]
        if kind != "vector" or not isinstance(result, list):
            raise PrometheusError(
                f"{self.url}: query {_short(promql)}: expected a vector, got {kind}"
            )
        return result

    def query_range(
        self, promql: str, start: datetime, end: datetime, step_seconds: int
    ) -> list[Series]:
        """Evaluate ``promql`` every ``step_seconds`` from ``start`` to ``end`` (both included
        when on the step); return the matrix.

        Raises:
            PrometheusError: unreachable, refused, or an answer that is not a matrix.
        """
        form = {
            "query": promql,
            "start": _unix(start),
            "end": _unix(end),
            "step": str(step_seconds),
        }
        data = self._call("query_range", form, promql)
        kind, result = data.get("resultType"), data.get("result")
        if kind != "matrix" or not isinstance(result, list):
            raise PrometheusError(
                f"{self.url}: query_range {_short(promql)}: expected a matrix, got {kind}"
            )
        return result

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", **(self._auth.headers or {})}
        token = self._auth.bearer_token
        if self._auth.bearer_token_file is not None:
            try:
                token = self._auth.bearer_token_file.read_text().strip()
            except OSError as error:
                raise PrometheusError(
                    f"bearer token file {self._auth.bearer_token_file}: {error.strerror}"
                ) from error
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _call(self, endpoint: str, form: Mapping[str, str], promql: str) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{endpoint}"
        where = f"{url}: query {_short(promql)}"
        headers = {**self._headers(), "Content-Type": "application/x-www-form-urlencoded"}
        try:
            response = self._http.request(
                "POST", url, body=urlencode(form).encode(), headers=headers
            )
        except urllib3.exceptions.HTTPError as error:
            raise PrometheusError(f"{where}: cannot reach Prometheus: {_reason(error)}") from error
        try:
            answer = json.loads(response.data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise PrometheusError(
                f"{where}: HTTP {response.status}, not a Prometheus API answer: "
                f"{_snippet(response.data)}"
            )
        if answer.get("status") != "success":
            kind = answer.get("errorType")
            kind = kind if kind in _API_ERROR_TYPES else "error"
            raise PrometheusError(
                f"{where}: HTTP {response.status}, {kind}: {answer.get('error', '(no message)')}"
            )
        data = answer.get("data")
        if not isinstance(data, dict):
            raise PrometheusError(f"{where}: the answer has no data")
        return data


def _unix(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("evaluation times must be timezone-aware")
    return f"{at.timestamp():.3f}"


def _short(promql: str, limit: int = 200) -> str:
    flat = " ".join(promql.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def _snippet(body: bytes, limit: int = 200) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return repr(text[:limit])


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None)
    return str(reason or error)
