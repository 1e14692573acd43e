"""Command-line flags of the commit trust policy and of rollback protection.

``bundle build`` and ``bundle watch`` take ``--allowed-signers FILE``, ``--gpg-keyring FILE``,
``--require-signed-commits`` / ``--no-require-signed-commits`` (on when either file is given),
``--signed-commits tip|all`` and ``--since REV``; ``bundle publish``, ``bundle watch`` and
``bundle serve`` take ``--allow-rollback``. This module turns them into library objects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgepolicy.bundles.commit_trust import SCOPES, TrustPolicy
from edgepolicy.errors import UsageError


def add_commit_trust(parser: argparse.ArgumentParser) -> None:
    """Add the flags that say which commits may become a bundle."""
    group = parser.add_argument_group(
        "trusted commits",
        "build only commits signed by an allowed key, checked by git verify-commit",
    )
    group.add_argument(
        "--allowed-signers",
        metavar="FILE",
        help="SSH allowed_signers file (Git's gpg.ssh.allowedSignersFile format)",
    )
    group.add_argument(
        "--gpg-keyring",
        metavar="FILE",
        help="OpenPGP public keys (gpg --export) allowed to sign; used in a private GNUPGHOME",
    )
    group.add_argument(
        "--require-signed-commits",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fail unless the commit is signed by an allowed key (default: on when "
        "--allowed-signers or --gpg-keyring is given; --no-require-signed-commits only "
        "records the signer when there is a trusted one)",
    )
    group.add_argument(
        "--signed-commits",
        choices=SCOPES,
        help="tip: only the commit built must be signed (default); all: every commit since "
        "--since (bundle watch: since the revision it last published), merged branches "
        "included",
    )
    group.add_argument(
        "--since",
        metavar="REV",
        action="append",
        help="with --signed-commits all: check only commits after REV, e.g. the last "
        "published revision (repeatable; default: the whole history)",
    )


def trust_policy(args: argparse.Namespace) -> TrustPolicy | None:
    """Return the trust policy the flags describe, or None when no key file is given.

    Raises:
        UsageError: the flags contradict each other or a key file does not exist.
    """
    signers = Path(args.allowed_signers) if args.allowed_signers else None
    keyring = Path(args.gpg_keyring) if args.gpg_keyring else None
    required = args.require_signed_commits
    if signers is None and keyring is None:
        if required or args.signed_commits or args.since:
            raise UsageError(
                "--require-signed-commits, --signed-commits and --since need the allowed "
                "signers: --allowed-signers FILE and/or --gpg-keyring FILE"
            )
        return None
    scope = args.signed_commits or "tip"
    if required is False and args.signed_commits == "all":
        raise UsageError("--signed-commits all needs signatures required; drop one of the two")
    if args.since and scope != "all":
        raise UsageError("--since only applies with --signed-commits all")
    return TrustPolicy(signers, keyring, required=required is not False, scope=scope)


def since(args: argparse.Namespace) -> tuple[str, ...]:
    """Return the ``--since`` revisions."""
    return tuple(args.since or ())


def add_allow_rollback(parser: argparse.ArgumentParser, *, service: bool = False) -> None:
    """Add ``--allow-rollback`` (for a publisher, or for the bundle service's uploads)."""
    parser.add_argument(
        "--allow-rollback",
        action="store_true",
        help=(
            "accept uploads that replace a bundle by an older revision (by commit time)"
            if service
            else "replace a bundle even by an older revision (default: refused when the new "
            "commit is an ancestor of the published one, or older by commit time)"
        ),
    )
