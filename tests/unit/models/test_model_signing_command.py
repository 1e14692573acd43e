"""`edgepolicy model sign` and `edgepolicy model verify` through the real CLI entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from model_fixtures import KeyPair, Pki, make_key_pair

from edgepolicy import cli


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _sign(capsys: pytest.CaptureFixture[str], model_dir: Path, *extra: str) -> Path:
    signature = model_dir.parent / "model.sig"
    code, out, err = _run(
        capsys, "model", "sign", str(model_dir), "--signature", str(signature), *extra
    )
    assert code == 0, err
    assert out == f"signed 3 files of {model_dir} into {signature}\n"
    return signature


def test_sign_then_verify_with_a_key(
    capsys: pytest.CaptureFixture[str], model_dir: Path, key_pair: KeyPair
) -> None:
    signature = _sign(capsys, model_dir, "--key", str(key_pair.private_path))
    code, out, err = _run(
        capsys,
        "model", "verify", str(model_dir),
        "--signature", str(signature),
        "--public-key", str(key_pair.public_path),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.startswith(f"verified: {model_dir} (3 files) signed by SHA256:")


def test_verify_not_verified_is_exit_1_with_one_line(
    capsys: pytest.CaptureFixture[str], model_dir: Path, key_pair: KeyPair
) -> None:
    signature = _sign(capsys, model_dir, "--key", str(key_pair.private_path))
    (model_dir / "model.onnx").write_bytes(b"swapped after signing")
    code, out, err = _run(
        capsys,
        "model", "verify", str(model_dir),
        "--signature", str(signature),
        "--public-key", str(key_pair.public_path),
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err == (
        "edgepolicy: not verified: model files do not match the signature: "
        "changed since signing: model.onnx\n"
    )


def test_verify_with_the_wrong_key_is_exit_1(
    capsys: pytest.CaptureFixture[str], model_dir: Path, key_pair: KeyPair, tmp_path: Path
) -> None:
    signature = _sign(capsys, model_dir, "--key", str(key_pair.private_path))
    other = make_key_pair(tmp_path, "other")
    code, _, err = _run(
        capsys,
        "model", "verify", str(model_dir),
        "--signature", str(signature),
        "--public-key", str(other.public_path),
    )  # fmt: skip
    assert code == 1
    assert err.startswith("edgepolicy: not verified: signed by nobody the policy trusts")
    assert len(err.splitlines()) == 1


def test_certificate_sign_and_verify(
    capsys: pytest.CaptureFixture[str], model_dir: Path, pki: Pki
) -> None:
    key, cert, chain = pki.leaf_files("release-bot")
    signature = _sign(
        capsys, model_dir, "--key", str(key), "--certificate", str(cert),
        "--certificate-chain", str(chain),
    )  # fmt: skip
    code, out, err = _run(
        capsys,
        "model", "verify", str(model_dir),
        "--signature", str(signature),
        "--certificate-chain", str(pki.root_file()),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == f"verified: {model_dir} (3 files) signed by CN=release-bot\n"


def test_certificate_from_another_ca_is_exit_1(
    capsys: pytest.CaptureFixture[str], model_dir: Path, pki: Pki, other_pki: Pki
) -> None:
    key, cert, chain = other_pki.leaf_files("intruder")
    signature = _sign(
        capsys, model_dir, "--key", str(key), "--certificate", str(cert),
        "--certificate-chain", str(chain),
    )  # fmt: skip
    code, _, err = _run(
        capsys,
        "model", "verify", str(model_dir),
        "--signature", str(signature),
        "--certificate-chain", str(pki.root_file()),
    )  # fmt: skip
    assert code == 1
    assert "certificate 'CN=intruder' does not chain to a trusted certificate" in err


def test_a_malformed_signature_file_is_exit_1(
    capsys: pytest.CaptureFixture[str], model_dir: Path, key_pair: KeyPair, tmp_path: Path
) -> None:
    signature = tmp_path / "garbage.sig"
    signature.write_text("not json")
    code, _, err = _run(
        capsys,
        "model", "verify", str(model_dir),
        "--signature", str(signature),
        "--public-key", str(key_pair.public_path),
    )  # fmt: skip
    assert code == 1
    assert err.startswith("edgepolicy: not verified: signature is malformed: not JSON")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--public-key", "{missing}"], "--public-key {missing}: cannot read"),
        (["--public-key", "{private}"], "--public-key {private}: this is a private key"),
        (["--public-key", "{model}/tokenizer/vocab.txt"], "not a PEM public key"),
        (["--certificate-chain", "{missing}"], "--certificate-chain {missing}: cannot read"),
        (["--identity", "a@b"], "--identity and --identity-provider go together"),
        (
            ["--public-key", "{public}", "--trusted-root", "{public}"],
            "--trusted-root: only with --identity",
        ),
        ([], "model verify needs a trust"),
    ],
)
def test_verify_usage_errors_are_exit_2_naming_the_file(
    capsys: pytest.CaptureFixture[str],
    model_dir: Path,
    key_pair: KeyPair,
    tmp_path: Path,
    flags: list[str],
    message: str,
) -> None:
    signature = _sign(capsys, model_dir, "--key", str(key_pair.private_path))
    names = {
        "missing": str(tmp_path / "missing.pem"),
        "private": str(key_pair.private_path),
        "public": str(key_pair.public_path),
        "model": str(model_dir),
    }
    argv = [flag.format(**names) for flag in flags]
    code, _, err = _run(
        capsys, "model", "verify", str(model_dir), "--signature", str(signature), *argv
    )
    assert code == 2
    assert err.startswith("edgepolicy: error: ")
    assert message.format(**names) in err


def test_verify_a_missing_signature_or_directory_is_exit_2(
    capsys: pytest.CaptureFixture[str], model_dir: Path, key_pair: KeyPair, tmp_path: Path
) -> None:
    signature = _sign(capsys, model_dir, "--key", str(key_pair.private_path))
    code, _, err = _run(
        capsys, "model", "verify", str(model_dir), "--signature", str(tmp_path / "no.sig"),
        "--public-key", str(key_pair.public_path),
    )  # fmt: skip
    assert code == 2
    assert f"{tmp_path / 'no.sig'}: cannot read" in err
    code, _, err = _run(
        capsys, "model", "verify", str(tmp_path / "nodir"), "--signature", str(signature),
        "--public-key", str(key_pair.public_path),
    )  # fmt: skip
    assert code == 2
    assert f"{tmp_path / 'nodir'}: not a directory" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "model sign needs --key PRIVATE.pem (with --certificate) or --keyless"),
        (["--keyless", "--key", "{key}"], "--keyless signs without --key"),
        (["--key", "{key}", "--identity-token", "t"], "--identity-token: only with --keyless"),
        (["--key", "{key}", "--certificate-chain", "{key}"], "--certificate-chain: only with"),
        (["--key", "{missing}"], "{missing}: cannot read"),
        (
            ["--key", "{key}", "--certificate", "{missing}"],
            "{missing}: cannot read",
        ),
        (
            ["--keyless", "--identity-token", "t", "--trust-config", "{missing}"],
            "{missing}: no such trust configuration file",
        ),
    ],
)
def test_sign_usage_errors_are_exit_2(
    capsys: pytest.CaptureFixture[str],
    model_dir: Path,
    key_pair: KeyPair,
    tmp_path: Path,
    flags: list[str],
    message: str,
) -> None:
    names = {"key": str(key_pair.private_path), "missing": str(tmp_path / "missing.pem")}
    argv = [flag.format(**names) for flag in flags]
    code, _, err = _run(
        capsys, "model", "sign", str(model_dir), "--signature", str(tmp_path / "x.sig"), *argv
    )
    assert code == 2
    assert message.format(**names) in err
    assert not (tmp_path / "x.sig").exists()


def test_sign_without_facts_warns(
    capsys: pytest.CaptureFixture[str], key_pair: KeyPair, tmp_path: Path
) -> None:
    directory = tmp_path / "bare"
    directory.mkdir()
    (directory / "model.onnx").write_bytes(b"w")
    code, out, err = _run(
        capsys, "model", "sign", str(directory), "--signature", str(tmp_path / "bare.sig"),
        "--key", str(key_pair.private_path),
    )  # fmt: skip
    assert code == 0
    assert "has no edgepolicy-facts.json" in err
    assert out == f"signed 1 file of {directory} into {tmp_path / 'bare.sig'}\n"


def test_without_the_models_extra_sign_is_exit_2(
    capsys: pytest.CaptureFixture[str],
    model_dir: Path,
    key_pair: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sigstore", None)
    code, _, err = _run(
        capsys, "model", "sign", str(model_dir), "--signature", str(tmp_path / "x.sig"),
        "--key", str(key_pair.private_path),
    )  # fmt: skip
    assert code == 2
    assert "model signatures need the signing extra (pip install 'edgepolicy[signing]'" in err
