"""Keyless (Sigstore) signatures verified offline against a trusted root minted in the test.

`OfflineSigstore` plays Fulcio, the CT log and Rekor with its own keys; sigstore-python then runs
its full verification (certificate chain at the log's time, SCT, checkpoint, inclusion proof and
promise, DSSE signature) with the policy's identities, without any network.
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest
from model_fixtures import KeyPair
from offline_sigstore import OfflineSigstore

from edgepolicy import cli
from edgepolicy.errors import ModelSignatureRejected
from edgepolicy.models.signatures import FACTS_FILE_NAME, verify_directory, verify_signature
from edgepolicy.models.trust import Identity, ModelTrust
from edgepolicy.models.verifier import ModelVerifier

ISSUER = "https://issuer.models.test"
SIGNER = "release@models.test"


@pytest.fixture(scope="module")
def sigstore() -> OfflineSigstore:
    return OfflineSigstore()


@pytest.fixture
def trust(sigstore: OfflineSigstore) -> ModelTrust:
    return ModelTrust(
        identities=(Identity(ISSUER, r"release@models\.test"),),
        trusted_root=sigstore.trusted_root_json(),
    )


@pytest.fixture
def signature(sigstore: OfflineSigstore, model_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "keyless.sig"
    sigstore.sign(model_dir, path, identity=SIGNER, issuer=ISSUER)
    return path


def _reason(text: str, trust: ModelTrust) -> str:
    with pytest.raises(ModelSignatureRejected) as caught:
        verify_signature(text, trust)
    return str(caught.value)


def test_keyless_signature_verifies_offline(
    model_dir: Path, signature: Path, trust: ModelTrust
) -> None:
    model = verify_directory(model_dir, signature, trust)
    assert model.signer == f"{ISSUER} {SIGNER}"
    assert model.file(FACTS_FILE_NAME) is not None


def test_keyless_through_the_admission_verifier(
    model_dir: Path, signature: Path, trust: ModelTrust
) -> None:
    facts = (model_dir / FACTS_FILE_NAME).read_text()
    result = ModelVerifier().verify(signature.read_text(), facts, trust)
    assert result.verified, result.reason
    assert result.signer == f"{ISSUER} {SIGNER}"
    edited = ModelVerifier().verify(signature.read_text(), facts.replace("int8", "int4"), trust)
    assert edited.reason.startswith("facts digest is not among the signed files")


def test_a_flipped_byte_is_refused(model_dir: Path, signature: Path, trust: ModelTrust) -> None:
    (model_dir / "model.onnx").write_bytes(b"\x09\x07weights")
    with pytest.raises(ModelSignatureRejected, match="changed since signing: model.onnx$"):
        verify_directory(model_dir, signature, trust)


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [
        ("mallory@models.test", ISSUER),  # another subject
        (SIGNER, "https://issuer.elsewhere.test"),  # the right subject from another issuer
    ],
)
def test_a_wrong_identity_is_refused(
    sigstore: OfflineSigstore,
    model_dir: Path,
    tmp_path: Path,
    trust: ModelTrust,
    identity: str,
    issuer: str,
) -> None:
    text = sigstore.sign(model_dir, tmp_path / "x.sig", identity=identity, issuer=issuer)
    assert _reason(text, trust) == (
        f"signed by nobody the policy trusts: keyless identity {identity} (issuer {issuer}) "
        "matches none of the policy's 1 trusted identities"
    )


def test_the_subject_pattern_must_match_the_whole_subject(
    sigstore: OfflineSigstore, signature: Path
) -> None:
    partial = ModelTrust(
        identities=(Identity(ISSUER, "release"),), trusted_root=sigstore.trusted_root_json()
    )
    assert _reason(signature.read_text(), partial).startswith(
        "signed by nobody the policy trusts: keyless identity"
    )
    broken = ModelTrust(
        identities=(Identity(ISSUER, "(unclosed"),), trusted_root=sigstore.trusted_root_json()
    )
    assert _reason(signature.read_text(), broken).startswith("signed by nobody the policy trusts")


def test_one_of_several_identities_is_enough(sigstore: OfflineSigstore, signature: Path) -> None:
    trust = ModelTrust(
        identities=(Identity("https://other", ".*"), Identity(ISSUER, r".*@models\.test")),
        trusted_root=sigstore.trusted_root_json(),
    )
    assert verify_signature(signature.read_text(), trust).signer == f"{ISSUER} {SIGNER}"


def test_another_sigstore_instance_is_untrusted(
    model_dir: Path, tmp_path: Path, trust: ModelTrust
) -> None:
    text = OfflineSigstore("elsewhere").sign(model_dir, tmp_path / "x.sig", identity=SIGNER)
    assert _reason(text, trust).startswith(
        "signed by nobody the policy trusts: the signing certificate does not chain to the "
        "trusted root's certificate authorities"
    )


def test_without_a_trusted_root_the_public_good_root_is_used_offline(
    signature: Path, trust: ModelTrust
) -> None:
    public_good = ModelTrust(identities=trust.identities)
    assert _reason(signature.read_text(), public_good).startswith(
        "signed by nobody the policy trusts: the signing certificate does not chain"
    )


def test_a_certificate_expired_when_logged_is_refused(
    sigstore: OfflineSigstore, model_dir: Path, tmp_path: Path, trust: ModelTrust
) -> None:
    text = sigstore.sign(
        model_dir,
        tmp_path / "x.sig",
        identity=SIGNER,
        not_before=sigstore.now - datetime.timedelta(hours=2),
        not_after=sigstore.now - datetime.timedelta(hours=1),
    )
    assert _reason(text, trust).startswith(
        "signing certificate is expired or not yet valid: the signing certificate was not valid "
        "when the transparency log recorded the signature"
    )


def _edited(text: str, edit: str) -> str:
    bundle = json.loads(text)
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    if edit == "statement":
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        statement["predicate"]["resources"][0]["digest"] = "0" * 64
        bundle["dsseEnvelope"]["payload"] = base64.b64encode(
            json.dumps(statement).encode()
        ).decode()
    elif edit == "log time":
        entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    elif edit == "checkpoint":
        entry["inclusionProof"]["rootHash"] = base64.b64encode(b"\x00" * 32).decode()
    return json.dumps(bundle)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("statement", "signature is not valid: DSSE: invalid signature"),
        ("log time", "signature is not valid: invalid log entry: SET: invalid inclusion promise"),
        ("checkpoint", "signature is not valid: invalid log entry: inclusion proof"),
    ],
)
def test_edited_bundles_are_invalid(
    signature: Path, trust: ModelTrust, edit: str, reason: str
) -> None:
    assert _reason(_edited(signature.read_text(), edit), trust).startswith(reason)


def test_a_malformed_keyless_bundle(signature: Path, trust: ModelTrust) -> None:
    bundle = json.loads(signature.read_text())
    bundle["verificationMaterial"]["tlogEntries"] = []
    assert _reason(json.dumps(bundle), trust).startswith(
        "signature is malformed: expected exactly one log entry"
    )


def test_an_unusable_trusted_root(signature: Path, trust: ModelTrust) -> None:
    bad = ModelTrust(identities=trust.identities, trusted_root="{}")
    assert _reason(signature.read_text(), bad).startswith(
        "signed by nobody the policy trusts: the policy's trustedRoot is unusable (malformed "
        "trusted_root.json"
    )


def test_keyless_refused_by_a_key_only_policy_and_a_key_refused_by_an_identity_policy(
    signature: Path, trust: ModelTrust, key_pair: KeyPair, model_dir: Path, tmp_path: Path
) -> None:
    assert _reason(signature.read_text(), ModelTrust(public_keys=(key_pair.public_pem,))) == (
        "signed by nobody the policy trusts: signed keyless (Sigstore), but the policy trusts "
        "no identities"
    )
    from edgepolicy.models.signatures import KeySigning, sign_directory

    key_signature = tmp_path / "key.sig"
    sign_directory(model_dir, key_signature, KeySigning(key_pair.private_path))
    assert _reason(key_signature.read_text(), trust).startswith(
        "signed by nobody the policy trusts: signed with a public key"
    )


def test_cli_identity_form(
    capsys: pytest.CaptureFixture[str],
    sigstore: OfflineSigstore,
    model_dir: Path,
    signature: Path,
    tmp_path: Path,
) -> None:
    root = tmp_path / "trusted_root.json"
    root.write_text(sigstore.trusted_root_json())
    base = ["model", "verify", str(model_dir), "--signature", str(signature)]
    trusted = ["--identity-provider", ISSUER, "--trusted-root", str(root)]
    assert cli.main([*base, "--identity", SIGNER, *trusted]) == 0
    assert capsys.readouterr().out == (
        f"verified: {model_dir} (3 files) signed by {ISSUER} {SIGNER}\n"
    )
    # --identity is exact, not a pattern
    assert cli.main([*base, "--identity", "release@models.tes.", *trusted]) == 1
    assert capsys.readouterr().err.startswith(
        "edgepolicy: not verified: signed by nobody the policy trusts: keyless identity"
    )
    root.write_text("not json")
    assert cli.main([*base, "--identity", SIGNER, *trusted]) == 2
    assert f"--trusted-root {root}: not JSON" in capsys.readouterr().err


def test_cli_keyless_signing_against_sigstore_services_on_loopback(
    capsys: pytest.CaptureFixture[str], model_dir: Path, tmp_path: Path
) -> None:
    """`model sign --keyless` runs model-signing's and sigstore-python's real signing flow
    (OIDC discovery, Fulcio CSR, SCT check, Rekor entry) against OfflineSigstore's services on
    127.0.0.1, configured by --trust-config; the bundle then verifies offline."""
    from offline_sigstore import identity_token

    instance = OfflineSigstore("loopback")
    signature = tmp_path / "keyless.sig"
    root = tmp_path / "trusted_root.json"
    root.write_text(instance.trusted_root_json())
    with instance.serve() as url:
        config = tmp_path / "trust_config.json"
        config.write_text(instance.client_trust_config_json(url))
        token = identity_token("ci@models.test", url)
        sign = ["model", "sign", str(model_dir), "--keyless", "--identity-token", token]
        assert cli.main([*sign, "--trust-config", str(config), "--signature", str(signature)]) == 0
        issuer = url
    capsys.readouterr()
    verify = ["model", "verify", str(model_dir), "--signature", str(signature)]
    trusted = ["--identity-provider", issuer, "--trusted-root", str(root)]
    assert cli.main([*verify, "--identity", "ci@models.test", *trusted]) == 0
    assert capsys.readouterr().out.endswith(f"signed by {issuer} ci@models.test\n")
    assert cli.main([*verify, "--identity", "someone@models.test", *trusted]) == 1
    assert "matches none of the policy's 1 trusted identities" in capsys.readouterr().err
    facts = (model_dir / FACTS_FILE_NAME).read_text()
    trust = ModelTrust(
        identities=(Identity(issuer, r"ci@models\.test"),), trusted_root=root.read_text()
    )
    assert ModelVerifier().verify(signature.read_text(), facts, trust).verified


def test_cli_keyless_signing_without_services_is_exit_2(
    capsys: pytest.CaptureFixture[str], model_dir: Path, tmp_path: Path
) -> None:
    from offline_sigstore import identity_token

    instance = OfflineSigstore("gone")
    with instance.serve() as url:
        config = tmp_path / "trust_config.json"
        config.write_text(instance.client_trust_config_json(url))
    # the services are stopped: discovery of the OIDC provider fails before any signing
    token = identity_token("ci@models.test", url)
    argv = ["model", "sign", str(model_dir), "--keyless", "--identity-token", token]
    assert cli.main([*argv, "--trust-config", str(config), "--signature", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith(
        "edgepolicy: error: keyless signing set-up failed (it needs the Sigstore services and "
        "the network)"
    )


def test_a_long_issuer_url_is_read_in_full(
    sigstore: OfflineSigstore, model_dir: Path, tmp_path: Path
) -> None:
    issuer = "https://token.actions.example.test/" + "tenant/" * 30  # > 127 bytes: long DER form
    text = sigstore.sign(model_dir, tmp_path / "x.sig", identity=SIGNER, issuer=issuer)
    trust = ModelTrust(
        identities=(Identity(issuer, r"release@models\.test"),),
        trusted_root=sigstore.trusted_root_json(),
    )
    assert verify_signature(text, trust).signer == f"{issuer} {SIGNER}"


def test_a_keyless_envelope_without_signature_is_malformed(
    signature: Path, trust: ModelTrust
) -> None:
    bundle = json.loads(signature.read_text())
    bundle["dsseEnvelope"]["signatures"] = []
    assert _reason(json.dumps(bundle), trust).startswith(
        "signature is malformed: envelope must contain exactly one signature"
    )
