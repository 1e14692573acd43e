"""Only trusted commits become bundles: real Git, real ssh-keygen and GPG, real OPA."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from edgepolicy.bundles.builder import Bundle, build_bundle
from edgepolicy.bundles.canonical import file_digest
from edgepolicy.bundles.commit_trust import CommitVerifier, TrustPolicy, commit_verifier
from edgepolicy.bundles.signing import load_signing_key
from policyrepo import PolicyRepo, allowed_signer, finops_policy, ssh_fingerprint, ssh_key

from edgepolicy.bundle_format import read_tar_gz
from edgepolicy.cli import main
from edgepolicy.errors import BundleError, UntrustedCommitError, UsageError

pytestmark = pytest.mark.usefixtures("stand_in_library")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SSH keys: alice and bob are allowed, mallory is not, old expired at 2026-01-01 00:01:30."""
    directory = tmp_path_factory.mktemp("ssh")
    return {name: ssh_key(directory, name) for name in ("alice", "bob", "mallory", "old")}


@pytest.fixture
def signers(tmp_path: Path, keys: dict[str, Path]) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(
        allowed_signer("alice@example.com", keys["alice"])
        + allowed_signer("bob@example.com", keys["bob"], 'namespaces="git"')
        + allowed_signer("old@example.com", keys["old"], 'valid-before="20260101000130Z"')
    )
    return path


@pytest.fixture
def repo(tmp_path: Path, keys: dict[str, Path]) -> PolicyRepo:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("cost.yaml", finops_policy())
    repo.commit("first, signed", ssh_key=keys["alice"])
    return repo


def _build(
    repo: PolicyRepo, opa: Path, policy: TrustPolicy, rev: str = "HEAD", since: Sequence[str] = ()
) -> Bundle:
    with CommitVerifier(policy) as verifier:
        return build_bundle(repo.path, rev, opa=opa, verifier=verifier, since=tuple(since))


def _manifest(archive: bytes) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(read_tar_gz(archive, source="bundle")[".manifest"])
    return manifest


def test_a_commit_signed_by_an_allowed_key_builds_and_names_its_signer(
    repo: PolicyRepo, opa: Path, signers: Path, keys: dict[str, Path], ec_key_file: Path
) -> None:
    head = repo.git("rev-parse", "HEAD")
    with CommitVerifier(TrustPolicy(allowed_signers=signers)) as verifier:
        bundle = build_bundle(
            repo.path, opa=opa, verifier=verifier, signing_key=load_signing_key(ec_key_file, "k")
        )
    metadata = _manifest(bundle.archive)["metadata"]
    signer = {
        "format": "ssh",
        "fingerprint": ssh_fingerprint(keys["alice"]),
        "principal": "alice@example.com",
    }
    assert metadata == {
        "commit": head,
        "author_time": "2026-01-01T00:01:00Z",
        "commit_time": "2026-01-01T00:01:00Z",
        "source": "local",
        "signer": signer,
    }
    # the bundle signature covers the manifest, hence the signer
    files = read_tar_gz(bundle.archive, source="bundle")
    token = json.loads(files[".signatures.json"])["signatures"][0]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    listed = {entry["name"]: entry["hash"] for entry in payload["files"]}
    assert listed[".manifest"] == file_digest(".manifest", files[".manifest"])


@pytest.mark.parametrize(
    ("signing", "reason"),
    [
        (None, "unsigned"),
        ("mallory", "unknown key {fingerprint} (not in allowed_signers)"),
        ("old", "expired key {fingerprint} (past its valid-before at commit time)"),
    ],
)
def test_an_untrusted_commit_fails_naming_commit_author_and_reason(
    repo: PolicyRepo,
    opa: Path,
    signers: Path,
    keys: dict[str, Path],
    signing: str | None,
    reason: str,
) -> None:
    repo.write("cost.yaml", finops_policy(max_replicas=9))
    key = keys[signing] if signing else None
    commit = repo.commit("loosen", ssh_key=key)
    with pytest.raises(UntrustedCommitError) as error:
        _build(repo, opa, TrustPolicy(allowed_signers=signers))
    fingerprint = ssh_fingerprint(key) if key else ""
    expected = reason.format(fingerprint=fingerprint)
    assert str(error.value).startswith(
        f"untrusted commit {commit} by Policy Author <author@example.com>: {expected}; "
        f"the commit built must carry a valid signature by a key in allowed_signers {signers}"
    )


def test_a_key_not_allowed_for_the_git_namespace_is_refused_as_such(
    repo: PolicyRepo, opa: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    only_files = tmp_path / "file_signers"
    only_files.write_text(allowed_signer("alice@example.com", keys["alice"], 'namespaces="file"'))
    head = repo.git("rev-parse", "HEAD")
    with pytest.raises(UntrustedCommitError) as error:
        _build(repo, opa, TrustPolicy(allowed_signers=only_files))
    assert str(error.value).startswith(
        f"untrusted commit {head} by Policy Author <author@example.com>: its key may not "
        'sign Git commits (the key\'s namespaces in allowed_signers do not include "git");'
    )


def test_an_allowed_signers_line_ssh_keygen_cannot_read_is_named(
    repo: PolicyRepo, opa: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    public_key = tmp_path / "alice.pub"  # a public key file, not an allowed_signers file
    public_key.write_text(Path(f"{keys['alice']}.pub").read_text())
    with pytest.raises(UntrustedCommitError) as error:
        _build(repo, opa, TrustPolicy(allowed_signers=public_key))
    assert (
        f"unknown key {ssh_fingerprint(keys['alice'])} (not in allowed_signers; its line 1 "
        "is not PRINCIPALS [OPTIONS] KEYTYPE KEY: invalid key);"
    ) in str(error.value)


def test_the_old_key_was_good_before_it_expired(
    tmp_path: Path, opa: Path, signers: Path, keys: dict[str, Path]
) -> None:
    repo = PolicyRepo(tmp_path / "early")
    repo.write("cost.yaml", finops_policy())
    repo.commit("at 00:01, before valid-before", ssh_key=keys["old"])
    bundle = _build(repo, opa, TrustPolicy(allowed_signers=signers))
    assert bundle.signer is not None and bundle.signer.principal == "old@example.com"


def test_a_tampered_commit_object_has_a_bad_signature(
    repo: PolicyRepo, opa: Path, signers: Path
) -> None:
    original = repo.git("cat-file", "commit", "HEAD")
    forged = original.replace("first, signed", "first, signed (and changed)")
    (repo.path / "forged").write_text(forged + "\n")
    commit = repo.git("hash-object", "-t", "commit", "-w", "forged")
    assert "gpgsig" in forged and commit != repo.git("rev-parse", "HEAD")
    with pytest.raises(UntrustedCommitError, match=f"commit {commit} by .*: bad signature"):
        _build(repo, opa, TrustPolicy(allowed_signers=signers), rev=commit)


@pytest.fixture
def merged(repo: PolicyRepo, keys: dict[str, Path]) -> tuple[PolicyRepo, str, str]:
    """main: first (alice) → merge (bob, signed) of a side branch with one unsigned commit."""
    base = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "--quiet", "-b", "side")
    repo.write("cost.yaml", finops_policy(max_replicas=7))
    unsigned = repo.commit("unsigned change on a side branch")
    repo.git("checkout", "--quiet", "main")
    repo.commits += 1
    repo.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['bob']}",
             "merge", "--quiet", "--no-ff", "-S", "-m", "merge side", "side")  # fmt: skip
    return repo, base, unsigned


def test_tip_only_trusts_a_signed_merge_of_unsigned_work(
    merged: tuple[PolicyRepo, str, str], opa: Path, signers: Path
) -> None:
    repo, _, _ = merged
    bundle = _build(repo, opa, TrustPolicy(allowed_signers=signers, scope="tip"))
    assert bundle.signer is not None and bundle.signer.principal == "bob@example.com"


def test_all_refuses_the_unsigned_commit_of_a_merged_branch(
    merged: tuple[PolicyRepo, str, str], opa: Path, signers: Path
) -> None:
    repo, base, unsigned = merged
    policy = TrustPolicy(allowed_signers=signers, scope="all")
    for since in ((), (base,)):
        with pytest.raises(UntrustedCommitError) as error:
            _build(repo, opa, policy, since=since)
        message = str(error.value)
        assert message.startswith(f"untrusted commit {unsigned} by Policy Author")
        assert "unsigned" in message and "every commit" in message
    # after the unsigned commit was published (vouched for), only what follows is checked
    bundle = _build(repo, opa, policy, since=(unsigned,))
    assert bundle.signer is not None and bundle.signer.principal == "bob@example.com"


def test_a_graft_cannot_hide_the_unsigned_commit_of_a_merged_branch(
    merged: tuple[PolicyRepo, str, str], opa: Path, signers: Path
) -> None:
    repo, base, unsigned = merged
    merge = repo.git("rev-parse", "HEAD")
    grafts = Path(repo.git("rev-parse", "--absolute-git-dir"), "info", "grafts")
    grafts.parent.mkdir(exist_ok=True)
    grafts.write_text(f"{merge} {base}\n")  # the merge would seem to have one parent
    policy = TrustPolicy(allowed_signers=signers, scope="all")
    with pytest.raises(UntrustedCommitError, match=f"untrusted commit {unsigned} by "):
        _build(repo, opa, policy)


def test_all_checks_the_tip_even_when_it_is_behind_since(
    repo: PolicyRepo, opa: Path, signers: Path
) -> None:
    unsigned = repo.commit("unsigned")
    later = repo.commit("later, unsigned too")
    policy = TrustPolicy(allowed_signers=signers, scope="all")
    with pytest.raises(UntrustedCommitError, match=f"untrusted commit {unsigned} "):
        _build(repo, opa, policy, rev=unsigned, since=(later,))


def test_signatures_not_required_records_a_signer_only_when_there_is_one(
    repo: PolicyRepo, opa: Path, signers: Path
) -> None:
    policy = TrustPolicy(allowed_signers=signers, required=False)
    assert _build(repo, opa, policy).signer is not None
    repo.commit("unsigned")
    bundle = _build(repo, opa, policy)
    assert bundle.signer is None
    assert "signer" not in _manifest(bundle.archive)["metadata"]


def test_git_configuration_cannot_widen_the_trust(
    repo: PolicyRepo,
    opa: Path,
    signers: Path,
    keys: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wide = tmp_path / "wide_signers"
    wide.write_text(allowed_signer("mallory@example.com", keys["mallory"]))
    repo.git("config", "gpg.ssh.allowedSignersFile", str(wide))
    repo.commit("mallory", ssh_key=keys["mallory"])
    with pytest.raises(UntrustedCommitError, match="unknown key"):
        _build(repo, opa, TrustPolicy(allowed_signers=signers))
    keyring = tmp_path / "empty.asc"
    keyring.write_text("")
    with pytest.raises(UsageError, match="holds no OpenPGP public key|cannot import"):
        _build(repo, opa, TrustPolicy(gpg_keyring=keyring))


def test_a_shallow_clone_cannot_vouch_for_history_it_lacks(
    repo: PolicyRepo, opa: Path, signers: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    repo.commit("second", ssh_key=keys["alice"])
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{repo.path}", str(shallow)],
        check=True,
    )
    policy = TrustPolicy(allowed_signers=signers, scope="all")
    with CommitVerifier(policy) as verifier, pytest.raises(UsageError, match="shallow clone"):
        build_bundle(shallow, opa=opa, verifier=verifier)


@pytest.fixture(scope="module")
def gpg_signers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    """OpenPGP keys in a signing home: carol's and erin's public keys are in the keyring file,
    dave's is not; erin's key expired on 2020-01-02 (``sign_in_2020`` signs with it)."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    directory = tmp_path_factory.mktemp("gpg")
    home = directory / "home"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--passphrase", ""]
    for uid in ("Carol <carol@example.com>", "Dave <dave@example.com>"):
        subprocess.run([*gpg, "--quick-gen-key", uid, "ed25519", "sign", "1y"],
                       check=True, capture_output=True)  # fmt: skip
    subprocess.run([*gpg, "--faked-system-time", "20200101T000000!", "--quick-gen-key",
                    "Erin <erin@example.com>", "ed25519", "sign", "1d"],
                   check=True, capture_output=True)  # fmt: skip
    sign_in_2020 = directory / "gpg-2020"
    sign_in_2020.write_text('#!/bin/sh\nexec gpg --faked-system-time 20200101T120000! "$@"\n')
    sign_in_2020.chmod(0o755)
    keyring = directory / "keyring.asc"
    exported = subprocess.run(
        [*gpg, "--armor", "--export", "carol@example.com", "erin@example.com"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    keyring.write_bytes(exported)
    listing = subprocess.run(
        [*gpg, "--with-colons", "--fingerprint", "carol@example.com"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line[:4] == "fpr:")
    yield {"home": home, "keyring": keyring, "fingerprint": fingerprint, "old": sign_in_2020}
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def test_gpg_signed_commits_are_checked_against_the_keyring(
    repo: PolicyRepo, opa: Path, gpg_signers: dict[str, Path | str]
) -> None:
    home, keyring = Path(gpg_signers["home"]), Path(gpg_signers["keyring"])
    repo.commit("by carol", gpg=(home, "carol@example.com"))
    policy = TrustPolicy(gpg_keyring=keyring)
    bundle = _build(repo, opa, policy)
    metadata = _manifest(bundle.archive)["metadata"]
    assert metadata["signer"] == {
        "format": "openpgp",
        "fingerprint": gpg_signers["fingerprint"],
        "principal": "Carol <carol@example.com>",
    }
    dave = repo.commit("by dave", gpg=(home, "dave@example.com"))
    with pytest.raises(UntrustedCommitError, match=f"commit {dave} by .*: unknown key [0-9A-F]+ "):
        _build(repo, opa, policy)
    whole = _build(repo, opa, TrustPolicy(gpg_keyring=home / "pubring.kbx"))  # a keyring file
    assert whole.signer is not None and whole.signer.principal == "Dave <dave@example.com>"
    repo.commits += 1
    repo.git("-c", f"gpg.program={gpg_signers['old']}", "-c", "user.signingkey=erin@example.com",
             "commit", "--quiet", "--allow-empty", "-S", "-m", "by erin",
             env={"GNUPGHOME": str(home)})  # fmt: skip
    erin = repo.git("rev-parse", "HEAD")
    with pytest.raises(UntrustedCommitError, match=f"commit {erin} by .*: expired key;"):
        _build(repo, opa, policy)


def test_build_cli_refuses_an_unsigned_commit_and_writes_nothing(
    repo: PolicyRepo,
    opa: Path,
    signers: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "bundle.tar.gz"
    args = ["bundle", "build", "--repo", str(repo.path), "--out", str(out)]
    assert main([*args, "--allowed-signers", str(signers)]) == 0
    assert "commit signed by alice@example.com (SHA256:" in capsys.readouterr().out
    out.unlink()
    unsigned = repo.commit("unsigned")
    assert main([*args, "--allowed-signers", str(signers)]) == 2
    err = capsys.readouterr().err
    assert f"untrusted commit {unsigned} by Policy Author <author@example.com>: unsigned" in err
    assert not out.exists()
    assert main([*args, "--allowed-signers", str(signers), "--no-require-signed-commits"]) == 0
    assert "commit signed by no allowed key (not required)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--require-signed-commits"], "need the allowed signers"),
        (["--signed-commits", "all"], "need the allowed signers"),
        (["--allowed-signers", "{signers}", "--since", "HEAD"], "--since only applies"),
        (
            [
                "--allowed-signers",
                "{signers}",
                "--no-require-signed-commits",
                "--signed-commits=all",
            ],
            "needs signatures required",
        ),
        (["--allowed-signers", "{missing}"], "does not exist"),
    ],
)
def test_contradicting_trust_flags_are_usage_errors(
    repo: PolicyRepo,
    signers: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    filled = [f.format(signers=signers, missing=tmp_path / "missing") for f in flags]
    out = tmp_path / "b.tar.gz"
    assert main(["bundle", "build", "--repo", str(repo.path), "--out", str(out), *filled]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_keyring_without_gpg_is_an_error_naming_the_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = tmp_path / "keys.asc"
    keyring.write_text("")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(BundleError) as refused, commit_verifier(TrustPolicy(gpg_keyring=keyring)):
        pass
    assert str(refused.value) == (
        f"gpg is not installed or not on PATH (needed to check commits against {keyring})"
    )  # the library names the file, not the flag
