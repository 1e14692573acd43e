"""The admission verifier: a model signature and its facts, against a policy's trust, cached.

`check` and the webhook both call `ModelVerifier.verify` with the two annotations' contents, so
CI and admission agree. It reads no model file: the signature (a model-signing bundle) must be
valid for the trust, and the facts text must hash to the digest the signature records for
``edgepolicy-facts.json``. Results, failures included, are cached by (sha256(signature),
sha256(facts), trust) with a bounded size and a TTL, so a burst of pods of one model costs one
verification; concurrent callers of one key wait for the one verification in flight.

Importing this module is cheap: model_signing and sigstore load on the first verification.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from edgepolicy.errors import ModelSignatureRejected, ModelSigningError, UsageError
from edgepolicy.models.signatures import FACTS_FILE_NAME, verify_signature
from edgepolicy.models.trust import ModelTrust

_logger = logging.getLogger(__name__)

FACTS_NOT_SIGNED = "facts digest is not among the signed files"
FACTS_MALFORMED = "facts are malformed"


@dataclass(frozen=True)
class ModelVerification:
    """The verdict on one (signature, facts, trust): facts only when verified."""

    verified: bool
    reason: str  # "" when verified; else why not, in the house style
    signer: str  # key fingerprint "SHA256:..." / certificate subject / "issuer subject"; "" if not
    facts: Mapping[str, Any] | None  # the parsed facts JSON, only when verified


_CacheKey = tuple[str, str, ModelTrust]


class _InFlight:
    """One verification being computed; other callers of the same key wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: ModelVerification | None = None


class ModelVerifier:
    """Verifies model signatures and facts; thread-safe, with a bounded TTL cache.

    Raises (constructor only):
        UsageError: `max_entries` below 1 or `ttl_seconds` not positive.
    """

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_seconds <= 0:
            raise UsageError(
                f"model verification cache: max_entries must be >= 1 (got {max_entries}) and "
                f"ttl_seconds > 0 (got {ttl_seconds})"
            )
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[_CacheKey, tuple[float, ModelVerification]] = OrderedDict()
        self._in_flight: dict[_CacheKey, _InFlight] = {}
        self.verifications = 0  # how many verifications ran (not served from the cache)

    def verify(self, signature: str, facts: str, trust: ModelTrust) -> ModelVerification:
        """Verify `signature` (content of the file `model sign` wrote) against `trust`, WITHOUT the
        model files: the signature must be valid for one of the trusted keys/chains/identities, and
        sha256(facts) must equal the signed digest of the file `edgepolicy-facts.json` in the signed
        manifest. Never raises for bad input (malformed signature, malformed facts JSON, wrong key):
        returns verified=False with the reason. Results (failures included) are cached by
        (sha256(signature), sha256(facts), trust) with bounded size and TTL; thread-safe."""
        key: _CacheKey = (_sha256(signature), _sha256(facts), trust)
        with self._lock:
            cached = self._fresh(key)
            if cached is not None:
                return _private_copy(cached)
            flight = self._in_flight.get(key)
            owner = flight is None
            if flight is None:
                flight = self._in_flight[key] = _InFlight()
        if not owner:
            flight.done.wait()
            assert flight.result is not None  # set before done
            return _private_copy(flight.result)
        result = _unverified("signature could not be verified: internal error")
        try:
            result = _verify(signature, facts, trust)
        finally:
            with self._lock:
                self.verifications += 1
                self._store(key, result)
                del self._in_flight[key]
            flight.result = result
            flight.done.set()
        return _private_copy(result)

    def _fresh(self, key: _CacheKey) -> ModelVerification | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, result = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return result

    def _store(self, key: _CacheKey, result: ModelVerification) -> None:
        self._entries[key] = (self._clock() + self._ttl, result)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _verify(signature: str, facts: str, trust: ModelTrust) -> ModelVerification:
    try:
        signed = verify_signature(signature, trust)
    except ModelSignatureRejected as rejected:
        return _unverified(str(rejected))
    except ModelSigningError as error:  # the signing extra is not installed
        return _unverified(f"signature could not be verified: {error}")
    except Exception as error:  # fail closed on anything model-signing/sigstore let through
        _logger.warning("model signature verification failed: %s", type(error).__name__)
        return _unverified(
            f"signature could not be verified: {type(error).__name__}: "
            f"{' '.join(str(error).split())}"
        )
    entry = signed.file(FACTS_FILE_NAME)
    if entry is None:
        return _unverified(
            f"{FACTS_NOT_SIGNED}: the signature covers no {FACTS_FILE_NAME} "
            f"({len(signed.files)} files signed; run `edgepolicy model attest` before signing)"
        )
    if entry.algorithm != "sha256":
        return _unverified(
            f"{FACTS_NOT_SIGNED}: {FACTS_FILE_NAME} is signed with {entry.algorithm}, "
            "admission checks sha256 (sign with the default hashing)"
        )
    digest = _sha256(facts)
    if digest != entry.digest:
        return _unverified(
            f"{FACTS_NOT_SIGNED}: the facts hash to sha256 {digest}, the signature records "
            f"{entry.digest} for {FACTS_FILE_NAME}"
        )
    try:
        parsed = json.loads(facts)
    except ValueError as error:
        return _unverified(f"{FACTS_MALFORMED}: not JSON ({error})")
    if not isinstance(parsed, dict):
        return _unverified(f"{FACTS_MALFORMED}: expected a JSON object")
    return ModelVerification(verified=True, reason="", signer=signed.signer, facts=parsed)


def _unverified(reason: str) -> ModelVerification:
    return ModelVerification(verified=False, reason=reason, signer="", facts=None)


def _private_copy(result: ModelVerification) -> ModelVerification:
    """Each caller gets its own facts: a caller editing them must not change the cache."""
    if result.facts is None:
        return result
    return replace(result, facts=copy.deepcopy(result.facts))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
