"""The admission verifier: signature + facts text against a policy's trust, with its cache."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from model_fixtures import KeyPair, write_model

from edgepolicy.errors import UsageError
from edgepolicy.models.signatures import FACTS_FILE_NAME, KeySigning, sign_directory
from edgepolicy.models.trust import ModelTrust
from edgepolicy.models.verifier import ModelVerification, ModelVerifier


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Model:
    """A signed model directory: its signature and facts texts, as the annotations carry them."""

    def __init__(self, directory: Path, key_pair: KeyPair) -> None:
        self.directory = directory
        signature = directory.parent / f"{directory.name}.sig"
        sign_directory(directory, signature, KeySigning(key_pair.private_path))
        self.signature = signature.read_text()
        self.facts = (directory / FACTS_FILE_NAME).read_text()
        self.trust = ModelTrust(public_keys=(key_pair.public_pem,))


@pytest.fixture
def model(model_dir: Path, key_pair: KeyPair) -> Model:
    return Model(model_dir, key_pair)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_verified_signature_and_facts(model: Model) -> None:
    result = ModelVerifier().verify(model.signature, model.facts, model.trust)
    assert result.verified, result.reason
    assert result.reason == ""
    assert result.signer.startswith("SHA256:")
    assert result.facts == json.loads(model.facts)


def test_edited_facts_are_not_among_the_signed_files(model: Model) -> None:
    edited = model.facts.replace('"int8"', '"int4"')
    assert edited != model.facts
    result = ModelVerifier().verify(model.signature, edited, model.trust)
    assert result == ModelVerification(verified=False, reason=result.reason, signer="", facts=None)
    assert result.reason.startswith(
        "facts digest is not among the signed files: the facts hash to sha256 "
    )


def test_facts_of_another_model_are_refused(
    model: Model, key_pair: KeyPair, tmp_path: Path
) -> None:
    fp32 = Model(write_model(tmp_path / "fp32", quantization="none"), key_pair)
    result = ModelVerifier().verify(model.signature, fp32.facts, model.trust)
    assert not result.verified
    assert result.reason.startswith("facts digest is not among the signed files")
    # and the other model's signature with this model's facts
    result = ModelVerifier().verify(fp32.signature, model.facts, model.trust)
    assert result.reason.startswith("facts digest is not among the signed files")


def test_a_wrong_key_is_refused(model: Model, other_key_pair: KeyPair) -> None:
    trust = ModelTrust(public_keys=(other_key_pair.public_pem,))
    result = ModelVerifier().verify(model.signature, model.facts, trust)
    assert not result.verified
    assert result.reason.startswith("signed by nobody the policy trusts")
    assert result.facts is None


def test_nothing_trusted_trusts_nobody(model: Model) -> None:
    result = ModelVerifier().verify(model.signature, model.facts, ModelTrust())
    assert result.reason.startswith("signed by nobody the policy trusts")


@pytest.mark.parametrize("signature", ["", "{", "null", '{"dsseEnvelope": 3}', "\ud800"])
def test_malformed_signatures_never_raise(model: Model, signature: str) -> None:
    result = ModelVerifier().verify(signature, model.facts, model.trust)
    assert not result.verified
    assert result.reason.startswith("signature is malformed")


def test_a_signature_without_facts_file(key_pair: KeyPair, tmp_path: Path) -> None:
    directory = tmp_path / "bare"
    directory.mkdir()
    (directory / "model.onnx").write_bytes(b"weights")
    signature = tmp_path / "bare.sig"
    sign_directory(directory, signature, KeySigning(key_pair.private_path))
    trust = ModelTrust(public_keys=(key_pair.public_pem,))
    result = ModelVerifier().verify(signature.read_text(), "{}", trust)
    assert result.reason.startswith(
        "facts digest is not among the signed files: the signature covers no edgepolicy-facts.json"
    )


def test_signed_facts_that_are_not_a_json_object(key_pair: KeyPair, tmp_path: Path) -> None:
    directory = tmp_path / "odd"
    directory.mkdir()
    (directory / FACTS_FILE_NAME).write_text("[1, 2]")
    signature = tmp_path / "odd.sig"
    sign_directory(directory, signature, KeySigning(key_pair.private_path))
    trust = ModelTrust(public_keys=(key_pair.public_pem,))
    result = ModelVerifier().verify(signature.read_text(), "[1, 2]", trust)
    assert result.reason == "facts are malformed: expected a JSON object"


# --- the cache ------------------------------------------------------------------------------


def test_cache_hit_verifies_once(model: Model, clock: FakeClock) -> None:
    verifier = ModelVerifier(clock=clock)
    first = verifier.verify(model.signature, model.facts, model.trust)
    second = verifier.verify(model.signature, model.facts, model.trust)
    assert first == second
    assert first.verified
    assert verifier.verifications == 1


def test_cache_key_includes_the_trust(model: Model, other_key_pair: KeyPair) -> None:
    verifier = ModelVerifier()
    assert verifier.verify(model.signature, model.facts, model.trust).verified
    other = ModelTrust(public_keys=(other_key_pair.public_pem,))
    assert not verifier.verify(model.signature, model.facts, other).verified
    assert verifier.verifications == 2


def test_cache_entries_expire(model: Model, clock: FakeClock) -> None:
    verifier = ModelVerifier(ttl_seconds=60, clock=clock)
    verifier.verify(model.signature, model.facts, model.trust)
    clock.now += 59
    verifier.verify(model.signature, model.facts, model.trust)
    assert verifier.verifications == 1
    clock.now += 1
    assert verifier.verify(model.signature, model.facts, model.trust).verified
    assert verifier.verifications == 2


def test_cache_is_bounded_least_recently_used_first(model: Model, clock: FakeClock) -> None:
    verifier = ModelVerifier(max_entries=2, clock=clock)
    facts = [model.facts, model.facts + " ", model.facts + "  "]
    for text in facts:
        verifier.verify(model.signature, text, model.trust)
    assert len(verifier) == 2
    assert verifier.verifications == 3
    verifier.verify(model.signature, facts[2], model.trust)  # still cached
    assert verifier.verifications == 3
    verifier.verify(model.signature, facts[0], model.trust)  # evicted: verified again
    assert verifier.verifications == 4
    assert len(verifier) == 2


def test_failures_are_cached(model: Model, clock: FakeClock) -> None:
    verifier = ModelVerifier(clock=clock)
    first = verifier.verify("not a signature", model.facts, model.trust)
    second = verifier.verify("not a signature", model.facts, model.trust)
    assert not first.verified
    assert first == second
    assert verifier.verifications == 1


def test_callers_cannot_edit_cached_facts(model: Model) -> None:
    verifier = ModelVerifier()
    first = verifier.verify(model.signature, model.facts, model.trust)
    assert first.facts is not None
    first.facts["model"]["quantization"] = "none"  # type: ignore[index]
    second = verifier.verify(model.signature, model.facts, model.trust)
    assert second.facts is not None
    assert second.facts["model"]["quantization"] == "int8"


def test_a_burst_of_one_model_costs_one_verification(model: Model) -> None:
    verifier = ModelVerifier()
    start = threading.Barrier(8)
    results: list[ModelVerification] = []
    lock = threading.Lock()

    def admit() -> None:
        start.wait()
        result = verifier.verify(model.signature, model.facts, model.trust)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=admit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(result.verified for result in results)
    assert verifier.verifications == 1


def test_bad_cache_settings_are_refused() -> None:
    with pytest.raises(UsageError, match=r"max_entries must be >= 1 \(got 0\)"):
        ModelVerifier(max_entries=0)
    with pytest.raises(UsageError, match=r"ttl_seconds > 0 \(got 0\)"):
        ModelVerifier(ttl_seconds=0)


def test_importing_the_verifier_loads_neither_model_signing_nor_sigstore() -> None:
    code = (
        "import sys\n"
        "import edgepolicy.models.verifier, edgepolicy.cli\n"
        "edgepolicy.cli.build_parser()\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'model_signing', 'sigstore', 'sigstore_models', 'OpenSSL', 'pydantic'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


def test_without_the_models_extra_verification_fails_closed_with_the_reason(
    model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "model_signing", None)  # import fails as if not installed
    result = ModelVerifier().verify(model.signature, model.facts, model.trust)
    assert not result.verified
    assert result.reason.startswith(
        "signature could not be verified: model signatures need the signing extra "
        "(pip install 'edgepolicy[signing]', part of 'edgepolicy[models]')"
    )
