"""The one module that talks to OPA's REST API, over pooled keep-alive HTTP connections.

Connections are :mod:`edgepolicy.http_connections`' lean ones (a decision is on the webhook's
hot path, where :mod:`http.client` and urllib3 cost more CPU than the decision's own JSON).
Queries have no side effects, so a request that fails on a reused connection the server has
meanwhile closed is sent once more on a fresh one; nothing else is retried (the caller owns its
deadline).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from edgepolicy import json_codec
from edgepolicy.decision import Decision
from edgepolicy.errors import OpaError, OpaUnavailableError
from edgepolicy.http_connections import ConnectionPool, MalformedAnswerError

DECISION_PATH = "edgepolicy/admission/decision"


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
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OpaError(f"OPA URL must look like http://HOST:PORT, got {base_url!r}")
        try:
            port = parts.port
        except ValueError as error:
            raise OpaError(f"OPA URL must look like http://HOST:PORT, got {base_url!r}") from error
        self.base_url = base_url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._pool = ConnectionPool(parts.scheme, parts.hostname, port, maxsize)

    def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        """Return the admission decision for ``input_doc`` (see docs/decision-contract.md).

        Raises:
            OpaUnavailableError: OPA refused the connection, failed TLS (e.g. its certificate
                is not trusted) or did not answer in time.
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
            OpaUnavailableError: OPA refused the connection, failed TLS (e.g. its certificate
                is not trusted) or did not answer in time.
            OpaError: the document is undefined, or OPA answered with an error or bad JSON.
        """
        url = f"{self._prefix}/v1/data/{path.strip('/')}"
        if input_doc is None:
            body = self._request("GET", url, None)
        else:
            body = self._request("POST", url, json_codec.dumps({"input": input_doc}))
        if not isinstance(body, dict) or "result" not in body:
            raise OpaError(
                f"OPA has no value at data.{path.strip('/').replace('/', '.')}: "
                "the document is undefined (is the policy that defines it loaded?)"
            )
        return body["result"]

    def health(self, *, bundles: bool = False) -> bool:
        """Tell whether OPA answers its health check (and, with ``bundles``, has activated
        every configured bundle). Never raises: an unreachable OPA is simply not healthy."""
        path = f"{self._prefix}/health" + ("?bundles" if bundles else "")
        try:
            answer = self._pool.request("GET", path, None, self._timeout)
        except (OSError, MalformedAnswerError, ValueError):
            return False
        return answer.status == 200

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    def _request(self, method: str, path: str, body: bytes | None) -> Any:
        try:
            answer = self._pool.request(method, path, body, self._timeout)
        except (OSError, MalformedAnswerError) as error:  # first: a certificate error is both
            raise OpaUnavailableError(
                f"OPA at {self.base_url} is unavailable: {_failure(error)}"
            ) from error
        except ValueError as error:  # a path no HTTP request line can carry
            raise OpaError(f"cannot ask OPA at {self.base_url}: {error}") from error
        try:
            payload = json.loads(answer.body) if answer.body else None
        except ValueError as error:
            raise OpaError(
                f"OPA at {self.base_url} answered HTTP {answer.status} with invalid JSON: "
                f"{_excerpt(answer.body)!r}"
            ) from error
        if answer.status != 200:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise OpaError(
                f"OPA at {self.base_url} answered HTTP {answer.status}: "
                f"{message or answer.reason or 'no message'}"
            )
        return payload


def _failure(error: OSError | MalformedAnswerError) -> str:
    """Why a request found no answer, in words (without OpenSSL's source locations)."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"its TLS certificate failed verification: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)": the words only
        words = str(error.strerror or error).partition("] ")[2].rpartition(" (_ssl.c")[0]
        hint = " (is it serving plain http?)" if error.reason == "WRONG_VERSION_NUMBER" else ""
        return f"TLS failed: {words or error}{hint}"
    return str(error)


def _excerpt(body: bytes) -> str:
    """The start of an answer that is not JSON (e.g. an HTTPS server's words to plain HTTP)."""
    return body[:100].decode("utf-8", "replace").strip()
