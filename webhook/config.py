"""Configuration of the webhook application (what every gunicorn worker needs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgepolicy.errors import UsageError

# Time kept back from the deadline for building and sending the response.
RESPONSE_MARGIN_SECONDS = 0.1
# The share of the deadline a new connection may wait in the listen backlog before it is reset
# (0.5 s of the default 3 s, and never less): a worker that slow to accept is overloaded; a
# shorter wait would also reset connections that a stall of the machine only delayed.
CONNECTION_WAIT_SHARE = 1 / 6
CONNECTION_WAIT_MIN_SECONDS = 0.5
# The share of the deadline a request may wait for a decision slot before its worker takes new
# connections sparingly (0.1 s of the default 3 s, and never less).
SLOT_QUEUE_SHARE = 1 / 30
SLOT_QUEUE_MIN_SECONDS = 0.1
# The share of the deadline Kubernetes lookups may use (at most one second).
KUBE_SHARE = 1 / 3
KUBE_MAX_SECONDS = 1.0


@dataclass(frozen=True)
class WebhookConfig:
    """How a worker decides: where OPA is, the deadline, the failure mode, the cluster access.

    ``timeout`` is the deadline (seconds) for answering one AdmissionReview, counted from its
    arrival; it must stay below the webhook configuration's ``timeoutSeconds``. ``bundles`` says
    OPA is fed by bundles, so readiness also requires every bundle to be activated.
    ``concurrent_decisions`` bounds the requests of one worker being decided at once; the others
    wait for a slot, within their deadline.
    """

    opa_url: str
    timeout: float = 3.0
    fail_open: bool = False
    kubeconfig: Path | None = None
    kube_context: str | None = None
    bundles: bool = False
    kube_cache_seconds: float = 5.0
    max_body_bytes: int = 8 * 1024 * 1024
    concurrent_decisions: int = 4

    def __post_init__(self) -> None:
        """Check the values.

        Raises:
            UsageError: the deadline leaves no time to ask OPA, a size or cache time is
                negative, or no decision may run at once.
        """
        if self.timeout <= RESPONSE_MARGIN_SECONDS * 2:
            raise UsageError(
                f"{self.timeout:g}: the deadline for answering an AdmissionReview must be more "
                f"than {RESPONSE_MARGIN_SECONDS * 2:g} seconds"
            )
        if self.kube_cache_seconds < 0 or self.max_body_bytes <= 0:
            raise UsageError("cache time and body size limits must be positive")
        if self.concurrent_decisions < 1:
            raise UsageError(
                f"concurrent decisions must be at least 1, got {self.concurrent_decisions}"
            )

    @property
    def kube_timeout(self) -> float:
        """Seconds all Kubernetes lookups of one request may take together."""
        return min(KUBE_MAX_SECONDS, self.timeout * KUBE_SHARE)

    @property
    def connection_wait(self) -> float:
        """Seconds a new connection may wait in the listen backlog: one that waited longer is
        reset before its TLS handshake."""
        return max(CONNECTION_WAIT_MIN_SECONDS, self.timeout * CONNECTION_WAIT_SHARE)

    @property
    def slot_queue_limit(self) -> float:
        """Seconds a request may wait for a decision slot before its worker takes new
        connections only every half of this time."""
        return max(SLOT_QUEUE_MIN_SECONDS, self.timeout * SLOT_QUEUE_SHARE)

    def opa_timeout(self, with_kube: bool) -> float:
        """Seconds OPA may take: half of what the lookups and the response margin leave, so a
        request that waited up to as long again for a decision slot is still answered in time."""
        budget = self.timeout - RESPONSE_MARGIN_SECONDS
        if with_kube:
            budget -= self.kube_timeout
        return budget / 2
