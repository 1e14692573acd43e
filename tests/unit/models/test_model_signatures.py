"""Signing and verifying model directories with real model-signing, real keys and a minted PKI.

The tamper matrix: every change after signing is refused, with a reason that says which check
failed (files, trust, validity, format).
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from model_fixtures import DAY, NOW, KeyPair, Pki, make_key_pair, write_model

from edgepolicy.errors import ModelSignatureRejected, ModelSigningError
from edgepolicy.models.signatures import (
    FACTS_FILE_NAME,
    CertificateSigning,
    KeySigning,
    sign_directory,
    verify_directory,
    verify_signature,
)
from edgepolicy.models.trust import ModelTrust


@pytest.fixture
def signed(model_dir: Path, key_pair: KeyPair, tmp_path: Path) -> Path:
    """The signature of `model_dir` by `key_pair`, written outside the directory."""
    signature = tmp_path / "model.sig"
    sign_directory(model_dir, signature, KeySigning(key_pair.private_path))
    return signature


def _trust(key_pair: KeyPair) -> ModelTrust:
    return ModelTrust(public_keys=(key_pair.public_pem,))


def _rejected(directory: Path, signature: Path, trust: ModelTrust) -> str:
    with pytest.raises(ModelSignatureRejected) as caught:
        verify_directory(directory, signature, trust)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- what is signed -------------------------------------------------------------------------


def test_key_signature_verifies_and_names_every_file(
    model_dir: Path, signed: Path, key_pair: KeyPair
) -> None:
    model = verify_directory(model_dir, signed, _trust(key_pair))
    assert sorted(entry.name for entry in model.files) == [
        FACTS_FILE_NAME,
        "model.onnx",
        "tokenizer/vocab.txt",
    ]
    assert model.signer.startswith("SHA256:")
    assert all(entry.algorithm == "sha256" for entry in model.files)


def test_signature_inside_the_directory_and_git_files_are_not_signed(
    model_dir: Path, key_pair: KeyPair
) -> None:
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (model_dir / ".gitattributes").write_text("*.onnx filter=lfs\n")
    signature = model_dir / "model.sig"
    signed = sign_directory(model_dir, signature, KeySigning(key_pair.private_path))
    names = {entry.name for entry in signed.files}
    assert names == {FACTS_FILE_NAME, "model.onnx", "tokenizer/vocab.txt"}
    verify_directory(model_dir, signature, _trust(key_pair))
    # renamed inside the directory: still the signature file, still not a model file
    renamed = model_dir / "renamed.sig"
    signature.rename(renamed)
    verify_directory(model_dir, renamed, _trust(key_pair))


def test_p384_keys_sign_and_verify(model_dir: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pair = make_key_pair(tmp_path, "p384", ec.SECP384R1())
    signature = tmp_path / "p384.sig"
    sign_directory(model_dir, signature, KeySigning(pair.private_path))
    verify_directory(model_dir, signature, _trust(pair))


# --- the tamper matrix: files ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer/vocab.txt", FACTS_FILE_NAME])
def test_a_flipped_byte_in_any_signed_file_is_refused(
    model_dir: Path, signed: Path, key_pair: KeyPair, name: str
) -> None:
    _flip_byte(model_dir / name, offset=1)
    message = _rejected(model_dir, signed, _trust(key_pair))
    assert message == f"model files do not match the signature: changed since signing: {name}"


def test_an_extra_file_is_refused(model_dir: Path, signed: Path, key_pair: KeyPair) -> None:
    (model_dir / "tokenizer" / "merges.txt").write_text("extra\n")
    message = _rejected(model_dir, signed, _trust(key_pair))
    assert message == (
        "model files do not match the signature: not signed (extra): tokenizer/merges.txt"
    )


def test_a_removed_file_is_refused(model_dir: Path, signed: Path, key_pair: KeyPair) -> None:
    (model_dir / "model.onnx").unlink()
    message = _rejected(model_dir, signed, _trust(key_pair))
    assert message == "model files do not match the signature: missing: model.onnx"


def test_a_swapped_facts_file_is_refused(
    model_dir: Path, signed: Path, key_pair: KeyPair, tmp_path: Path
) -> None:
    other = write_model(tmp_path / "fp32", quantization="none")
    shutil.copy(other / FACTS_FILE_NAME, model_dir / FACTS_FILE_NAME)
    message = _rejected(model_dir, signed, _trust(key_pair))
    assert message == (
        f"model files do not match the signature: changed since signing: {FACTS_FILE_NAME}"
    )


def test_a_signature_for_another_model_is_refused(
    model_dir: Path, key_pair: KeyPair, tmp_path: Path
) -> None:
    other = write_model(tmp_path / "other", weights=b"other weights")
    signature = tmp_path / "other.sig"
    sign_directory(other, signature, KeySigning(key_pair.private_path))
    message = _rejected(model_dir, signature, _trust(key_pair))
    assert message == "model files do not match the signature: changed since signing: model.onnx"


def test_a_symbolic_link_is_refused_when_the_signature_allows_none(
    model_dir: Path, signed: Path, key_pair: KeyPair
) -> None:
    (model_dir / "model.onnx").unlink()
    (model_dir / "model.onnx").symlink_to(model_dir / "tokenizer" / "vocab.txt")
    message = _rejected(model_dir, signed, _trust(key_pair))
    assert message.startswith("model files do not match the signature: ")
    assert "model.onnx' because it is a symlink" in message


# --- the tamper matrix: trust ---------------------------------------------------------------


def test_a_wrong_key_is_refused(model_dir: Path, signed: Path, other_key_pair: KeyPair) -> None:
    message = _rejected(model_dir, signed, _trust(other_key_pair))
    assert message.startswith("signed by nobody the policy trusts: signed with a public key")


def test_the_right_key_among_several_verifies(
    model_dir: Path, signed: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    trust = ModelTrust(public_keys=(other_key_pair.public_pem, key_pair.public_pem))
    assert verify_directory(model_dir, signed, trust).files


def test_a_key_signature_is_refused_by_a_policy_trusting_only_certificates(
    model_dir: Path, signed: Path, pki: Pki
) -> None:
    message = _rejected(model_dir, signed, ModelTrust(certificate_chains=(pki.root.pem,)))
    assert message.startswith("signed by nobody the policy trusts")


def test_an_unparsable_trusted_key_is_reported(
    model_dir: Path, signed: Path, other_key_pair: KeyPair
) -> None:
    trust = ModelTrust(public_keys=("not a key", other_key_pair.public_pem))
    message = _rejected(model_dir, signed, trust)
    assert "publicKeys[0] is not a PEM public key" in message


# --- certificates (private PKI) ---------------------------------------------------------------


def _sign_with_certificate(model_dir: Path, pki: Pki, name: str, **kwargs: object) -> Path:
    key, cert, chain = pki.leaf_files(name, **kwargs)
    signature = pki.directory / f"{name}.sig"
    sign_directory(model_dir, signature, CertificateSigning(key, cert, (chain,)))
    return signature


def test_a_certificate_signature_verifies_against_the_root(model_dir: Path, pki: Pki) -> None:
    signature = _sign_with_certificate(model_dir, pki, "ci-signer")
    model = verify_directory(model_dir, signature, ModelTrust(certificate_chains=(pki.root.pem,)))
    assert model.signer == "CN=ci-signer"


def test_a_certificate_from_another_ca_is_untrusted(
    model_dir: Path, pki: Pki, other_pki: Pki
) -> None:
    signature = _sign_with_certificate(model_dir, other_pki, "intruder")
    message = _rejected(model_dir, signature, ModelTrust(certificate_chains=(pki.root.pem,)))
    assert message.startswith(
        "signed by nobody the policy trusts: certificate 'CN=intruder' does not chain to a "
        "trusted certificate"
    )


def test_trusting_only_the_intermediate_is_not_enough(model_dir: Path, pki: Pki) -> None:
    signature = _sign_with_certificate(model_dir, pki, "ci-signer")
    trust = ModelTrust(certificate_chains=(pki.intermediate.pem,))
    assert _rejected(model_dir, signature, trust).startswith(
        "signed by nobody the policy trusts: certificate 'CN=ci-signer' does not chain"
    )
    both = ModelTrust(certificate_chains=(pki.intermediate.pem + pki.root.pem,))
    assert verify_directory(model_dir, signature, both).signer == "CN=ci-signer"


def test_an_expired_certificate_is_refused(model_dir: Path, pki: Pki) -> None:
    signature = _sign_with_certificate(
        model_dir, pki, "old-signer", not_before=NOW - 10 * DAY, not_after=NOW - DAY
    )
    message = _rejected(model_dir, signature, ModelTrust(certificate_chains=(pki.root.pem,)))
    assert message.startswith(
        "signing certificate is expired or not yet valid: certificate 'CN=old-signer' is valid "
    )


def test_a_not_yet_valid_certificate_is_refused(model_dir: Path, pki: Pki) -> None:
    signature = _sign_with_certificate(
        model_dir, pki, "future-signer", not_before=NOW + DAY, not_after=NOW + 10 * DAY
    )
    message = _rejected(model_dir, signature, ModelTrust(certificate_chains=(pki.root.pem,)))
    assert message.startswith("signing certificate is expired or not yet valid")


def test_a_certificate_not_allowed_to_sign_is_refused(model_dir: Path, pki: Pki) -> None:
    signature = _sign_with_certificate(model_dir, pki, "tls-only", digital_signature=False)
    message = _rejected(model_dir, signature, ModelTrust(certificate_chains=(pki.root.pem,)))
    assert message.startswith("signed by nobody the policy trusts: certificate 'CN=tls-only'")
    assert "not allowed to sign" in message


def test_a_certificate_signature_is_refused_by_a_policy_trusting_only_keys(
    model_dir: Path, pki: Pki, key_pair: KeyPair
) -> None:
    signature = _sign_with_certificate(model_dir, pki, "ci-signer")
    message = _rejected(model_dir, signature, _trust(key_pair))
    assert message == (
        "signed by nobody the policy trusts: signed with a certificate, but the policy "
        "trusts no certificateChains"
    )


def test_a_certificate_that_is_not_the_keys_is_a_signing_error(model_dir: Path, pki: Pki) -> None:
    key, _, chain = pki.leaf_files("one")
    _, cert, _ = pki.leaf_files("two")
    with pytest.raises(ModelSigningError, match=r"two\.cert\.pem: the certificate is not for"):
        sign_directory(model_dir, pki.directory / "x.sig", CertificateSigning(key, cert, (chain,)))


# --- the tamper matrix: the signature itself ------------------------------------------------


def _edit_bundle(signature: Path, edit: object) -> str:
    bundle = json.loads(signature.read_text())
    edit(bundle)  # type: ignore[operator]
    return json.dumps(bundle)


def _tamper_statement(bundle: dict[str, object]) -> None:
    envelope = bundle["dsseEnvelope"]
    assert isinstance(envelope, dict)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _tamper_signature_bytes(bundle: dict[str, object]) -> None:
    envelope = bundle["dsseEnvelope"]
    assert isinstance(envelope, dict)
    raw = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    raw[-1] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("edit", [_tamper_statement, _tamper_signature_bytes])
def test_an_edited_statement_or_signature_is_invalid(
    signed: Path, key_pair: KeyPair, edit: object
) -> None:
    with pytest.raises(ModelSignatureRejected) as caught:
        verify_signature(_edit_bundle(signed, edit), _trust(key_pair))
    assert str(caught.value).startswith(
        "signature is not valid: the DSSE envelope's signature does not verify with key SHA256:"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "signature is malformed: not JSON"),
        ("[1, 2]", "signature is malformed: expected a Sigstore bundle"),
        ('{"mediaType": "x"}', "signature is malformed: no dsseEnvelope"),
        ('{"dsseEnvelope": {}}', "signature is malformed: no verificationMaterial"),
        (
            '{"dsseEnvelope": {}, "verificationMaterial": {"publicKey": {}}}',
            "signature is malformed: the signature does not name its public key",
        ),
        (
            '{"dsseEnvelope": {}, "verificationMaterial": {"other": 1}}',
            "signature is malformed: verificationMaterial has no publicKey",
        ),
    ],
)
def test_malformed_signatures_are_refused(key_pair: KeyPair, text: str, expected: str) -> None:
    with pytest.raises(ModelSignatureRejected) as caught:
        verify_signature(text, _trust(key_pair))
    assert str(caught.value).startswith(expected)


def test_a_truncated_signature_is_malformed(signed: Path, key_pair: KeyPair) -> None:
    text = signed.read_text()
    with pytest.raises(ModelSignatureRejected, match="^signature is malformed: "):
        verify_signature(text[: len(text) // 2], _trust(key_pair))


def test_a_bundle_with_a_bad_envelope_is_malformed(signed: Path, key_pair: KeyPair) -> None:
    def _no_signatures(bundle: dict[str, object]) -> None:
        envelope = bundle["dsseEnvelope"]
        assert isinstance(envelope, dict)
        envelope["signatures"] = []

    with pytest.raises(ModelSignatureRejected, match="^signature is malformed: "):
        verify_signature(_edit_bundle(signed, _no_signatures), _trust(key_pair))


# --- usage errors ---------------------------------------------------------------------------


def test_missing_files_are_usage_errors(model_dir: Path, key_pair: KeyPair, tmp_path: Path) -> None:
    with pytest.raises(ModelSigningError, match=r"nope\.sig: cannot read"):
        verify_directory(model_dir, tmp_path / "nope.sig", _trust(key_pair))
    with pytest.raises(ModelSigningError, match=r"absent\.pem: cannot read"):
        sign_directory(model_dir, tmp_path / "x.sig", KeySigning(tmp_path / "absent.pem"))
    with pytest.raises(ModelSigningError, match=r"missing-dir: not a directory"):
        sign_directory(
            tmp_path / "missing-dir", tmp_path / "x.sig", KeySigning(key_pair.private_path)
        )


def test_a_public_key_given_as_signing_key_is_a_usage_error(
    model_dir: Path, key_pair: KeyPair, tmp_path: Path
) -> None:
    with pytest.raises(ModelSigningError, match=r"signer\.pub\.pem: not an unencrypted PEM"):
        sign_directory(model_dir, tmp_path / "x.sig", KeySigning(key_pair.public_path))
