"""Which commits may become policy: commit signatures checked by Git before a bundle is built.

A :class:`TrustPolicy` names the keys allowed to sign policy commits: an SSH ``allowed_signers``
file (Git's ``gpg.ssh.allowedSignersFile`` format, ``valid-before``/``valid-after`` included)
and/or a file of OpenPGP public keys. Git itself verifies every signature (``git log`` with
``%G?``, which runs ``ssh-keygen -Y verify`` or ``gpg --verify``); this module only sets Git up
and reads its verdict:

- Git's own configuration never widens the trust: ``gpg.ssh.allowedSignersFile`` is always the
  policy's file (an empty one without it), and GPG runs in a private ``GNUPGHOME`` holding only
  the policy's keyring, every key of which is marked trusted (being in the file is the trust),
  with keys never fetched from elsewhere. X.509 (gpgsm) signatures are never trusted.
- A signature counts only when Git answers ``G`` (good, by an allowed key). Everything else is
  refused with the reason: unsigned (``N``), bad signature (``B``, e.g. a commit object changed
  after signing), unknown key (``U`` for SSH keys outside ``allowed_signers``, ``E`` for keys
  outside the keyring), expired key (``Y``, or an SSH key used after its ``valid-before``),
  expired signature (``X``), revoked key (``R``).

The scope says which commits must be signed: ``tip`` (only the commit built; its signer vouches
for everything it contains, merges included) or ``all`` (every commit reachable from the tip
but not from the base revisions, i.e. since the last published revision, the commits of merged
branches included).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from edgepolicy.bundles.gitrepo import resolve_commit, run_git

from edgepolicy.errors import BundleError, UntrustedCommitError, UsageError

SCOPES = ("tip", "all")
_MAX_LISTED = 5
_FIELDS = "%H%x1f%G?%x1f%GF%x1f%GK%x1f%GS"
# ssh-keygen: an allowed_signers line whose namespaces="..." leave out Git's namespace "git"
_NOT_FOR_GIT = 'not permitted for use in signature namespace "git"'
# ssh-keygen: a line of the allowed_signers file it could not read (FILE:LINE: problem)
_UNREADABLE_LINE = re.compile(r"^.*:(\d+): ((?:invalid|bad options)[^\r\n]*)\r?$", re.MULTILINE)
_REASONS = {
    "N": "unsigned",
    "B": "bad signature (the commit was changed after it was signed, or the signature is corrupt)",
    "X": "expired signature",
    "Y": "expired key",
    "R": "revoked key",
}


@dataclass(frozen=True)
class TrustPolicy:
    """Who may sign policy commits, whether a signature is required, and for which commits."""

    allowed_signers: Path | None = None
    gpg_keyring: Path | None = None
    required: bool = True
    scope: str = "tip"

    def __post_init__(self) -> None:
        """Check the policy.

        Raises:
            UsageError: no key file, an unknown scope, or a key file that does not exist.
        """
        if self.allowed_signers is None and self.gpg_keyring is None:
            raise UsageError("a commit trust policy needs an allowed_signers file or a keyring")
        if self.scope not in SCOPES:
            raise UsageError(f"commit signature scope {self.scope!r}: expected one of {SCOPES}")
        for path in (self.allowed_signers, self.gpg_keyring):
            if path is not None and not path.is_file():
                raise UsageError(f"commit trust file {path} does not exist or is not a file")


@dataclass(frozen=True)
class Signer:
    """Who signed a commit: the key's fingerprint and the identity it is allowed for.

    ``principal`` is the ``allowed_signers`` principal for SSH keys and the key's user id for
    OpenPGP keys.
    """

    format: str
    fingerprint: str
    principal: str

    def __str__(self) -> str:
        """Describe the signer for a log line: principal and fingerprint."""
        return f"{self.principal} ({self.fingerprint})"

    def metadata(self) -> dict[str, str]:
        """Return the signer as recorded in a bundle's ``.manifest`` metadata."""
        return {"format": self.format, "fingerprint": self.fingerprint, "principal": self.principal}


@dataclass(frozen=True)
class _Verdict:
    commit: str
    letter: str
    fingerprint: str
    key: str
    signer: str


class CommitVerifier:
    """Checks commits against a :class:`TrustPolicy`; use it as a context manager.

    Entering prepares the private ``GNUPGHOME`` (and an empty ``allowed_signers`` file when the
    policy has none); leaving stops any GPG agent started there and deletes it.
    """

    def __init__(self, policy: TrustPolicy) -> None:
        """Prepare to check commits against ``policy`` (nothing happens before entering)."""
        self.policy = policy
        self._tmp: Path | None = None

    def __enter__(self) -> CommitVerifier:
        """Create the private GPG home and import the keyring.

        Raises:
            UsageError: the keyring cannot be read or holds no public key.
            BundleError: GPG is needed but not installed.
        """
        self._tmp = Path(tempfile.mkdtemp(prefix="edgepolicy-trust-"))
        try:
            home = self._tmp / "gnupg"
            home.mkdir(mode=0o700)
            (home / "gpg.conf").write_text("no-auto-key-retrieve\n", encoding="ascii")
            if self.policy.gpg_keyring is not None:
                _import_keyring(home, self.policy.gpg_keyring)
            if self.policy.allowed_signers is None:
                (self._tmp / "allowed_signers").write_bytes(b"")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Clean up (see :meth:`close`)."""
        self.close()

    def close(self) -> None:
        """Stop GPG agents started in the private home and delete it."""
        if self._tmp is None:
            return
        home = self._tmp / "gnupg"
        if any(home.glob("S.*")):  # an agent was started: stop it before its socket goes
            _run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None

    def _config(self) -> tuple[list[str], dict[str, str]]:
        if self._tmp is None:
            raise BundleError("the commit verifier is used outside its 'with' block")
        signers = self.policy.allowed_signers or self._tmp / "allowed_signers"
        args = [
            "-c", f"gpg.ssh.allowedSignersFile={signers.resolve()}",
            "-c", "gpg.program=gpg",
            "-c", "gpg.openpgp.program=gpg",
            "-c", "gpg.ssh.program=ssh-keygen",
            "-c", "gpg.x509.program=false",  # X.509 (gpgsm) signatures are never trusted
            "-c", "log.showSignature=false",
        ]  # fmt: skip
        return args, {"GNUPGHOME": str(self._tmp / "gnupg")}

    def check(self, repo: Path, commit: str, since: Sequence[str] = ()) -> Signer | None:
        """Check ``commit`` (and, with scope ``all``, every commit since ``since``).

        Returns the tip's signer, or None when it has no trusted signature and signatures are
        not required. With scope ``all`` the commits checked are those reachable from
        ``commit`` but from none of ``since`` (all its history when ``since`` is empty);
        ``commit`` itself is always checked.

        Raises:
            UntrustedCommitError: signatures are required and a commit checked has none by an
                allowed key (the message names each such commit, its author and why).
            UsageError: a ``since`` revision names no commit; the history to check is cut by a
                shallow clone.
            BundleError: Git failed.
        """
        tip = resolve_commit(repo, commit)
        verdicts = self._verdicts(repo, [tip], no_walk=True)
        if self.policy.required and self.policy.scope == "all":
            bases = [resolve_commit(repo, rev) for rev in since]
            history = self._verdicts(repo, [tip, *(f"^{base}" for base in bases)], no_walk=False)
            _check_not_shallow(repo, [v.commit for v in history])
            verdicts += [v for v in history if v.commit != tip]
        bad = [v for v in verdicts if v.letter != "G"]
        if bad and self.policy.required:
            raise UntrustedCommitError(self._explain(repo, bad, since))
        head = verdicts[0]
        if head.letter != "G":
            return None
        kind = "ssh" if head.fingerprint.startswith("SHA256:") else "openpgp"
        return Signer(kind, head.fingerprint, head.signer)

    def _verdicts(self, repo: Path, revs: Sequence[str], *, no_walk: bool) -> list[_Verdict]:
        args, env = self._config()
        walk = ["--no-walk"] if no_walk else []
        out = run_git(
            [*args, "log", "-z", *walk, f"--format={_FIELDS}", *revs, "--"], cwd=repo, env=env
        )
        verdicts = []
        for record in out.decode("utf-8", "replace").split("\0"):
            if record:
                commit, letter, fingerprint, key, signer = record.split("\x1f", 4)
                verdicts.append(_Verdict(commit, letter, fingerprint, key, signer))
        return verdicts

    def _explain(self, repo: Path, bad: Sequence[_Verdict], since: Sequence[str]) -> str:
        lines = [
            f"commit {v.commit} by {self._author(repo, v.commit)}: {self._reason(repo, v)}"
            for v in bad[:_MAX_LISTED]
        ]
        if len(bad) > _MAX_LISTED:
            lines.append(f"and {len(bad) - _MAX_LISTED} more")
        keys = [
            f"allowed_signers {p}" if p == self.policy.allowed_signers else f"GPG keyring {p}"
            for p in (self.policy.allowed_signers, self.policy.gpg_keyring)
            if p is not None
        ]
        scope = (
            "the commit built"
            if self.policy.scope == "tip"
            else "every commit " + (f"since {', '.join(since)}" if since else "in its history")
        )
        return (
            f"untrusted {'; '.join(lines)}; {scope} must carry a valid signature by a key in "
            f"{' or '.join(keys)}; nothing was built"
        )

    def _author(self, repo: Path, commit: str) -> str:
        args, env = self._config()
        raw = run_git([*args, "log", "-1", "--format=%an <%ae>", commit, "--"], cwd=repo, env=env)
        text = raw.decode("utf-8", "replace").strip()
        return "".join(c if c.isprintable() else "?" for c in text)  # never echo control chars

    def _detail(self, repo: Path, commit: str) -> str:
        """Return what Git's verification said about ``commit`` (``%GG``)."""
        args, env = self._config()
        out = run_git([*args, "log", "-1", "--format=%GG", commit, "--"], cwd=repo, env=env)
        return out.decode("utf-8", "replace")

    def _reason(self, repo: Path, verdict: _Verdict) -> str:
        if verdict.letter == "B" and _NOT_FOR_GIT in self._detail(repo, verdict.commit):
            return (
                "its key may not sign Git commits (the key's namespaces in allowed_signers "
                'do not include "git")'
            )
        if verdict.letter in _REASONS:
            return _REASONS[verdict.letter]
        if verdict.letter == "E":
            return f"unknown key {verdict.key} (not in the GPG keyring, cannot be checked)"
        if verdict.letter == "U":
            if not verdict.fingerprint.startswith("SHA256:"):
                return f"key {verdict.fingerprint} is not trusted"
            detail = self._detail(repo, verdict.commit)
            if "key has expired" in detail:
                return f"expired key {verdict.fingerprint} (past its valid-before at commit time)"
            if "not yet valid" in detail:
                return f"key {verdict.fingerprint} not yet valid at commit time (valid-after)"
            unreadable = _UNREADABLE_LINE.search(detail)
            note = (
                f"; its line {unreadable[1]} is not PRINCIPALS [OPTIONS] KEYTYPE KEY: "
                f"{unreadable[2]}"
                if unreadable
                else ""
            )
            return f"unknown key {verdict.fingerprint} (not in allowed_signers{note})"
        return f"signature not accepted (Git verdict {verdict.letter!r})"


@contextmanager
def commit_verifier(policy: TrustPolicy | None) -> Iterator[CommitVerifier | None]:
    """Yield an entered :class:`CommitVerifier` for ``policy``, or None without a policy.

    Raises:
        UsageError, BundleError: as :meth:`CommitVerifier.__enter__`.
    """
    if policy is None:
        yield None
        return
    with CommitVerifier(policy) as verifier:
        yield verifier


def _run(args: Sequence[str], *, check: bool = True, stdin: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(list(args), input=stdin, capture_output=True, check=False)
    except FileNotFoundError as error:
        if not check:
            return b""
        raise BundleError(f"{args[0]} is not installed or not on PATH") from error
    if check and result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BundleError(f"{args[0]} failed: {message[-1] if message else 'no output'}")
    return result.stdout


def _import_keyring(home: Path, keyring: Path) -> None:
    """Import the public keys of ``keyring`` into ``home`` and mark each one trusted.

    ``keyring`` is exported keys (``gpg --export``, armored or not) or a keyring file
    (``pubring.kbx``, ``pubring.gpg``), which is only read.

    Raises:
        UsageError: the file holds no OpenPGP public key.
        BundleError: GPG is not installed.
    """
    if shutil.which("gpg") is None:
        raise BundleError(
            f"gpg is not installed or not on PATH (needed to check commits against {keyring})"
        )
    gpg = ["gpg", "--batch", "--no-tty", "--homedir", str(home)]
    try:
        _run([*gpg, "--import", str(keyring)])
    except BundleError:  # not exported keys: read it as a keyring
        source = ["--no-default-keyring", "--keyring", str(keyring.resolve())]
        exported = _run([*gpg, *source, "--export"], check=False)
        if exported:
            _run([*gpg, "--import"], stdin=exported)
    listing = _run([*gpg, "--with-colons", "--list-keys"]).decode("utf-8", "replace")
    primaries, expect_fpr = [], False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            expect_fpr = True
        elif fields[0] == "fpr" and expect_fpr:
            primaries.append(fields[9])
            expect_fpr = False
    if not primaries:
        raise UsageError(f"GPG keyring {keyring} holds no OpenPGP public key")
    trust = "".join(f"{fpr}:6:\n" for fpr in primaries).encode()  # 6: ultimate
    _run([*gpg, "--import-ownertrust"], stdin=trust)


def _check_not_shallow(repo: Path, commits: Sequence[str]) -> None:
    """Refuse to vouch for a history whose older commits a shallow clone does not have.

    Raises:
        UsageError: one of ``commits`` is a shallow boundary.
    """
    path = Path(run_git(["rev-parse", "--git-path", "shallow"], cwd=repo).decode().strip())
    path = path if path.is_absolute() else repo / path
    try:
        boundary = set(path.read_text(encoding="ascii").split())
    except OSError:
        return  # not a shallow clone
    cut = boundary.intersection(commits)
    if cut:
        raise UsageError(
            f"{repo} is a shallow clone cut at {sorted(cut)[0]}: the commits before it cannot "
            "be checked; fetch the full history or check only the commits since a revision"
        )
