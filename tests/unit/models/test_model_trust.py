"""ModelTrust from a ModelPolicy's spec.signature."""

from __future__ import annotations

import pytest

from edgepolicy.errors import ModelTrustError
from edgepolicy.models.trust import Identity, ModelTrust


def test_full_spec() -> None:
    spec = {
        "required": True,
        "publicKeys": ["-----BEGIN PUBLIC KEY-----\nA\n-----END PUBLIC KEY-----\n"],
        "certificateChains": ["-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"],
        "identities": [{"issuer": "https://issuer.example", "subjectRegExp": ".*@example\\.com"}],
        "trustedRoot": '{"mediaType": "x"}',
    }
    trust = ModelTrust.from_signature_spec(spec)
    assert trust == ModelTrust(
        public_keys=(spec["publicKeys"][0],),  # type: ignore[index]
        certificate_chains=(spec["certificateChains"][0],),  # type: ignore[index]
        identities=(Identity("https://issuer.example", ".*@example\\.com"),),
        trusted_root='{"mediaType": "x"}',
    )
    assert not trust.is_empty
    assert hash(trust) == hash(ModelTrust.from_signature_spec(dict(spec)))


def test_empty_spec_trusts_nothing() -> None:
    trust = ModelTrust.from_signature_spec({"required": True})
    assert trust == ModelTrust()
    assert trust.is_empty


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"publicKeys": "pem"}, "spec.signature.publicKeys: expected a list"),
        ({"publicKeys": [1]}, "spec.signature.publicKeys[0]: expected a non-empty string"),
        ({"certificateChains": [""]}, "spec.signature.certificateChains[0]"),
        ({"identities": ["x"]}, "spec.signature.identities[0]: expected an object"),
        ({"identities": [{"issuer": "i"}]}, "spec.signature.identities[0].subjectRegExp"),
        ({"trustedRoot": 3}, "spec.signature.trustedRoot"),
    ],
)
def test_wrong_types_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ModelTrustError, match=field.replace("[", r"\[").replace("]", r"\]")):
        ModelTrust.from_signature_spec(spec)
