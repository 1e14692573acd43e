"""The one module that talks to OPA's REST API, over a pooled keep-alive HTTP client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import urllib3

from edgepolicy.decision import Decision
from edgepolicy.errors import OpaError, OpaUnavailableError

DECISION_PATH = "edgepolicy/admission/decision"
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class OpaClient:
    """Ask one OPA server for decisions and data.

    Connections are pooled and kept alive; no retries (the caller owns its deadline).
    """

    def __init__(self, base_url: str, *, timeout: float = 3.0, maxsize: int = 10) -> None:
        """Prepare a client for OPA at ``base_url`` (e.g. ``http://127.0.0.1:8181``).

        ``timeout`` bounds each request (connect plus read), in seconds; ``maxsize`` is the
        number of connections kept open.

        Raises:
            OpaError: ``base_url`` is not an http(s) URL.
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OpaError(f"OPA URL must look like http://HOST:PORT, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._timeout = urllib3.Timeout(total=timeout)
        self._pool = urllib3.PoolManager(
            num_pools=1, maxsize=maxsize, block=False, retries=False, timeout=self._timeout
        )

    def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        """Return the admission decision for ``input_doc`` (see docs/decision-contract.md).

        Raises:
            OpaUnavailableError: OPA refused the connection or did not answer in time.
            OpaError: the decision is undefined (policy not loaded), not of the contract's
                shape, or OPA answered with an error.
        """
        result = self.query(DECISION_PATH, input_doc)
        return Decision.from_document(result)

    def query(self, path: str, input_doc: Mapping[str, Any] | None = None) -> Any:
        """Return the value of ``data.<path>`` (``path`` with slashes, e.g. ``a/b/c``).

        With ``input_doc`` the document is evaluated with that input (POST), without it read
        as is (GET).

        Raises:
            OpaUnavailableError: OPA refused the connection or did not answer in time.
            OpaError: the document is undefined, or OPA answered with an error or bad JSON.
        """
        url = f"{self.base_url}/v1/data/{path.strip('/')}"
        if input_doc is None:
            body = self._request("GET", url, None)
        else:
            body = self._request("POST", url, json.dumps({"input": input_doc}).encode())
        if not isinstance(body, dict) or "result" not in body:
            raise OpaError(
                f"OPA has no value at data.{path.strip('/').replace('/', '.')}: "
                "the document is undefined (is the policy that defines it loaded?)"
            )
        return body["result"]

    def health(self, *, bundles: bool = False) -> bool:
        """Tell whether OPA answers its health check (and, with ``bundles``, has activated
        every configured bundle). Never raises: an unreachable OPA is simply not healthy."""
        url = f"{self.base_url}/health" + ("?bundles" if bundles else "")
        try:
            response = self._pool.request("GET", url, preload_content=True)
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    def _request(self, method: str, url: str, body: bytes | None) -> Any:
        try:
            response = self._pool.request(method, url, body=body, headers=_JSON_HEADERS)
        except urllib3.exceptions.HTTPError as error:
            raise OpaUnavailableError(f"OPA at {self.base_url} is unavailable: {error}") from error
        try:
            payload = json.loads(response.data) if response.data else None
        except ValueError as error:
            raise OpaError(
                f"OPA at {self.base_url} answered HTTP {response.status} with invalid JSON"
            ) from error
        if response.status != 200:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise OpaError(
                f"OPA at {self.base_url} answered HTTP {response.status}: "
                f"{message or response.reason or 'no message'}"
            )
        return payload
