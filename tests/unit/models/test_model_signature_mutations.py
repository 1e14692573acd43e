"""Every field of each kind of signature, deleted or given another type: the verifier never
raises, never fails with an unexplained error, and verifies only when the field is unsigned
metadata that does not matter (a DSSE key id, the log entries of a key or certificate bundle)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from model_fixtures import KeyPair, Pki
from offline_sigstore import OfflineSigstore

from edgepolicy.models.signatures import (
    FACTS_FILE_NAME,
    CertificateSigning,
    KeySigning,
    sign_directory,
)
from edgepolicy.models.trust import Identity, ModelTrust
from edgepolicy.models.verifier import ModelVerifier

KNOWN_REASONS = (
    "signature is malformed",
    "signature is not valid",
    "signed by nobody the policy trusts",
    "signing certificate is expired or not yet valid",
    "facts digest is not among the signed files",
)
UNSIGNED = {
    "key": {("dsseEnvelope", "signatures", 0, "keyid"), ("verificationMaterial", "tlogEntries")},
    "certificate": {
        ("dsseEnvelope", "signatures", 0, "keyid"),
        ("verificationMaterial", "tlogEntries"),
    },
    "keyless": {
        ("dsseEnvelope", "signatures", 0, "keyid"),
        # empty in the one-leaf log of OfflineSigstore: deleting it changes nothing
        ("verificationMaterial", "tlogEntries", 0, "inclusionProof", "hashes"),
    },
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _mutants(bundle: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    for path in _paths(bundle):
        for replacement in ("delete", None, 7, "x", [], {}):
            mutant = copy.deepcopy(bundle)
            parent = mutant
            for key in path[:-1]:
                parent = parent[key]
            if replacement == "delete":
                del parent[path[-1]]
            elif parent[path[-1]] == replacement:
                continue  # not a change
            else:
                parent[path[-1]] = replacement
            yield path, json.dumps(mutant)


@pytest.mark.parametrize("kind", ["key", "certificate", "keyless"])
def test_mutated_signatures_are_refused_with_a_known_reason(
    kind: str, model_dir: Path, key_pair: KeyPair, pki: Pki, tmp_path: Path
) -> None:
    signature = tmp_path / f"{kind}.sig"
    sigstore = OfflineSigstore()
    if kind == "key":
        sign_directory(model_dir, signature, KeySigning(key_pair.private_path))
    elif kind == "certificate":
        key, cert, chain = pki.leaf_files("signer")
        sign_directory(model_dir, signature, CertificateSigning(key, cert, (chain,)))
    else:
        sigstore.sign(model_dir, signature, identity="ci@models.test")
    trust = ModelTrust(
        public_keys=(key_pair.public_pem,),
        certificate_chains=(pki.root.pem,),
        identities=(Identity("https://issuer.models.test", r"ci@models\.test"),),
        trusted_root=sigstore.trusted_root_json(),
    )
    facts = (model_dir / FACTS_FILE_NAME).read_text()
    assert ModelVerifier().verify(signature.read_text(), facts, trust).verified
    verifier = ModelVerifier(max_entries=1)
    for path, mutant in _mutants(json.loads(signature.read_text())):
        result = verifier.verify(mutant, facts, trust)
        if result.verified:
            assert path in UNSIGNED[kind], path
        else:
            assert result.reason.startswith(KNOWN_REASONS), (path, result.reason)
