"""The command-line options naming the policy a local OPA decides with (``--policy``,
``--data``, ``--opa``, ``--verification-key``, ``--verification-key-id``), shared by
``check``, ``verify`` and ``audit``: one function adds them to a parser, one reads them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from edgepolicy.bundle_format import is_signed
from edgepolicy.checking import PolicySource
from edgepolicy.cli.flag_errors import from_flag
from edgepolicy.errors import OpaNotFoundError, UsageError
from edgepolicy.library import library_path
from edgepolicy.opa_binary import find_opa
from edgepolicy.verification_keys import VerificationKey, load_verification_key

POLICY_HELP = "Rego directory or OPA bundle to use (default: the library shipped with edgepolicy)"
DATA_HELP = "YAML/JSON data merged at the root of OPA's data (repeatable)"
KEY_HELP = "public key verifying a signed --policy bundle (RSA: RS256, EC: ES256/384/512)"


@dataclass(frozen=True)
class PolicyOptions:
    """The policy options as read: the OPA binary, the Rego to load, the bundle's key."""

    opa_binary: Path
    policy: PolicySource
    verification_key: VerificationKey | None


def add_policy_options(
    parser: argparse.ArgumentParser,
    *,
    policy_help: str = POLICY_HELP,
    data_help: str = DATA_HELP,
    key_help: str = KEY_HELP,
) -> None:
    """Add the policy options to ``parser``; each command may word the help for its use."""
    parser.add_argument("--policy", metavar="DIR|BUNDLE.tar.gz", help=policy_help)
    parser.add_argument("--data", metavar="FILE", action="append", default=[], help=data_help)
    parser.add_argument("--verification-key", metavar="PEM", help=key_help)
    parser.add_argument(
        "--verification-key-id",
        metavar="ID",
        default="default",
        help="key id the bundle's signature names (default: default)",
    )
    parser.add_argument("--opa", metavar="PATH", help="OPA binary to run")


def opa_binary(args: argparse.Namespace) -> Path:
    """The OPA binary ``--opa`` names, else the one :func:`find_opa` finds.

    Raises:
        OpaNotFoundError: as :func:`find_opa`, the message naming ``--opa``.
    """
    try:
        return find_opa(args.opa)
    except OpaNotFoundError as error:
        if args.opa:
            raise OpaNotFoundError(f"--opa {error}") from error
        raise OpaNotFoundError(f"{error}, or pass --opa PATH") from error


def policy_path(args: argparse.Namespace) -> Path:
    """The ``--policy`` path, else the library shipped with edgepolicy."""
    return Path(args.policy) if args.policy else library_path()


def read_policy_options(args: argparse.Namespace) -> PolicyOptions:
    """Find OPA, classify ``--policy`` and load the verification key, in that order.
    ``--data`` is left to the command: ``verify`` merges it with each case's own data.

    Raises:
        OpaNotFoundError: ``--opa`` is missing, or no OPA was found at all.
        UsageError: ``--policy`` is neither a directory nor a bundle, or the key is unusable.
    """
    opa = opa_binary(args)
    with from_flag("--policy"):
        policy = PolicySource.from_path(policy_path(args))
    key = None
    if args.verification_key and not policy.is_bundle:
        raise UsageError("--verification-key applies to a bundle: give --policy BUNDLE.tar.gz")
    if args.verification_key:
        with from_flag("--verification-key"):
            key = load_verification_key(args.verification_key, args.verification_key_id)
    elif policy.is_bundle and is_signed(policy.path):
        raise UsageError(
            f"--policy {policy.path}: the bundle is signed: give the public key that verifies "
            "it (--verification-key PEM, and --verification-key-id ID if its key id is not "
            "'default')"
        )
    return PolicyOptions(opa_binary=opa, policy=policy, verification_key=key)
