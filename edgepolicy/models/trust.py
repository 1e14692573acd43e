"""What a ModelPolicy trusts to sign models: public keys, certificate chains, keyless identities.

Plain data only (no cryptography here): a `ModelTrust` is hashable so that it can be part of the
verifier's cache key. The key material is parsed when a signature is verified
(`edgepolicy.models.signatures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgepolicy.errors import ModelTrustError


@dataclass(frozen=True)
class Identity:
    """A keyless (Sigstore) signer: the OIDC issuer, exactly, and a regular expression that must
    match the whole certificate subject (its email, URI or other-name SAN)."""

    issuer: str
    subject_regexp: str


@dataclass(frozen=True)
class ModelTrust:
    """What a ModelPolicy's spec.signature trusts. Hashable: part of the cache key."""

    public_keys: tuple[str, ...] = ()  # PEM public keys
    certificate_chains: tuple[str, ...] = ()  # PEM certificate chains (private PKI)
    identities: tuple[Identity, ...] = ()  # keyless: OIDC issuer + subject regexp
    trusted_root: str | None = None  # Sigstore trusted_root.json text (private/offline Sigstore)

    @classmethod
    def from_signature_spec(cls, spec: Mapping[str, Any]) -> ModelTrust:
        """Build the trust of a ModelPolicy's ``spec.signature`` (already schema-validated).

        Raises:
            ModelTrustError: a field has the wrong type (the message names the field).
        """
        if not isinstance(spec, Mapping):
            raise ModelTrustError("spec.signature: expected an object")
        identities = []
        for index, entry in enumerate(_sequence(spec, "identities")):
            field = f"spec.signature.identities[{index}]"
            if not isinstance(entry, Mapping):
                raise ModelTrustError(f"{field}: expected an object with issuer and subjectRegExp")
            identities.append(
                Identity(
                    issuer=_string(entry.get("issuer"), f"{field}.issuer"),
                    subject_regexp=_string(entry.get("subjectRegExp"), f"{field}.subjectRegExp"),
                )
            )
        trusted_root = spec.get("trustedRoot")
        if trusted_root is not None:
            trusted_root = _string(trusted_root, "spec.signature.trustedRoot")
        return cls(
            public_keys=_strings(spec, "publicKeys"),
            certificate_chains=_strings(spec, "certificateChains"),
            identities=tuple(identities),
            trusted_root=trusted_root,
        )

    @property
    def is_empty(self) -> bool:
        """True when nothing at all is trusted (every signature is then untrusted)."""
        return not (self.public_keys or self.certificate_chains or self.identities)


def _sequence(spec: Mapping[str, Any], name: str) -> Sequence[Any]:
    value = spec.get(name)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ModelTrustError(f"spec.signature.{name}: expected a list")
    return value


def _strings(spec: Mapping[str, Any], name: str) -> tuple[str, ...]:
    return tuple(
        _string(value, f"spec.signature.{name}[{index}]")
        for index, value in enumerate(_sequence(spec, name))
    )


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelTrustError(f"{field}: expected a non-empty string")
    return value
