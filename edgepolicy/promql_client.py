"""Instant PromQL queries against any Prometheus-compatible HTTP API (Prometheus, Thanos,
Mimir, VictoriaMetrics): ``GET /api/v1/query``.

The aggregation happens in PromQL; this module only sends the expression and returns the
vector's samples with their labels and exact decimal values (``NaN`` and infinities are left
out: they are no measurement).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlencode

import urllib3

from edgepolicy.errors import EdgepolicyError


class PrometheusError(EdgepolicyError):
    """The Prometheus API could not be reached or refused a query (the message names the URL
    and the API's error)."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and value."""

    labels: Mapping[str, str]
    value: Decimal


class InstantQuery(Protocol):
    """What the FinOps commands need of a Prometheus API: one instant query."""

    def query(self, promql: str, *, at: datetime | None = None) -> list[Sample]:
        """Return the instant vector of ``promql`` evaluated at ``at`` (default: now)."""
        ...


class PromqlClient:
    """A pooled client of the Prometheus HTTP API at ``base_url`` (e.g.
    ``http://prometheus:9090``; a path prefix such as Thanos' or Mimir's ``/prometheus`` is
    kept)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        """Raises:
        PrometheusError: ``base_url`` is not an http(s) URL."""
        if not base_url.startswith(("http://", "https://")):
            raise PrometheusError(
                f"Prometheus URL must start with http:// or https://, got {base_url!r}"
            )
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._pool = urllib3.PoolManager(maxsize=2, retries=False)

    def query(self, promql: str, *, at: datetime | None = None) -> list[Sample]:
        """Return the instant vector of ``promql`` at ``at`` (a scalar answer is one sample
        without labels).

        Raises:
            PrometheusError: the API is unreachable, answers an error (a bad expression, a
                timeout) or something that is not a vector or scalar.
        """
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        url = f"{self._base}/api/v1/query?{urlencode(params)}"
        try:
            response = self._pool.request("GET", url, timeout=urllib3.Timeout(total=self._timeout))
        except urllib3.exceptions.HTTPError as error:
            raise PrometheusError(f"Prometheus at {self._base}: {error}") from error
        return _samples(response.status, response.data, self._base)

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()


def _samples(status: int, body: bytes, where: str) -> list[Sample]:
    try:
        document: Any = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise PrometheusError(f"Prometheus at {where}: HTTP {status}, not a JSON answer")
    if document.get("status") != "success":
        raise PrometheusError(
            f"Prometheus at {where}: HTTP {status} {document.get('errorType', '')}: "
            f"{document.get('error', 'query failed')}"
        )
    data = document.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        value = _value(result)
        return [] if value is None else [Sample({}, value)]
    if kind != "vector" or not isinstance(result, list):
        raise PrometheusError(f"Prometheus at {where}: expected a vector, got {kind!r}")
    samples = []
    for series in result:
        value = _value(series.get("value")) if isinstance(series, dict) else None
        if value is not None:
            labels = series.get("metric") or {}
            samples.append(Sample({str(k): str(v) for k, v in labels.items()}, value))
    return samples


def _value(pair: Any) -> Decimal | None:
    if not isinstance(pair, list) or len(pair) != 2:
        return None
    try:
        value = Decimal(str(pair[1]))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
