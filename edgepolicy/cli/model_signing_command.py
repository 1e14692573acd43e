"""`edgepolicy model sign` and `edgepolicy model verify`: model signatures on the command line.

`verify` checks a directory exactly as admission checks the annotations (same library code):
exit 0 verified, 1 not verified (the reason on one line), 2 bad usage (raised as
EdgepolicyError, turned into a message by the CLI).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from edgepolicy.errors import ModelSignatureRejected, UsageError
from edgepolicy.models.signatures import (
    FACTS_FILE_NAME,
    CertificateSigning,
    KeylessSigning,
    KeySigning,
    SigningMethod,
    sign_directory,
    verify_directory,
)
from edgepolicy.models.trust import Identity, ModelTrust

EXIT_VERIFIED = 0
EXIT_NOT_VERIFIED = 1


_SIGN_EXAMPLES = """\
Examples:
  edgepolicy model sign models/llm --key signing.pem --signature llm.sig
  edgepolicy model sign models/llm --key leaf.key --certificate leaf.pem \\
      --certificate-chain intermediate.pem --signature llm.sig
  edgepolicy model sign models/llm --keyless --use-ambient-credentials --signature llm.sig
"""

_VERIFY_EXAMPLES = """\
Examples:
  edgepolicy model verify models/llm --signature llm.sig --public-key signing.pub.pem
  edgepolicy model verify models/llm --signature llm.sig --certificate-chain root-ca.pem
  edgepolicy model verify models/llm --signature llm.sig --identity ci@example.com \\
      --identity-provider https://accounts.example.com --trusted-root trusted_root.json
"""


def add_subcommands(model_subparsers: Any) -> None:
    """Register `sign` and `verify` under the `model` group."""
    _add_sign(model_subparsers)
    _add_verify(model_subparsers)


def _add_sign(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sign",
        epilog=_SIGN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="sign a model directory (model files and edgepolicy-facts.json)",
        description=(
            "Sign every file of DIR in the OpenSSF model-signing format (a Sigstore bundle over "
            "an in-toto manifest of sha256 file digests). Three forms: --key (elliptic-curve "
            "key), --key with --certificate [--certificate-chain] (private PKI: the chain is "
            "embedded), --keyless (Sigstore: needs network access to Fulcio, Rekor and the OIDC "
            "provider). Git files and the signature file itself are not signed."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="the model directory")
    parser.add_argument(
        "--signature", required=True, metavar="OUT.sig", help="where to write the signature"
    )
    parser.add_argument("--key", metavar="PRIVATE.pem", help="EC private key (P-256/384/521)")
    parser.add_argument(
        "--certificate", metavar="CERT.pem", help="the key's certificate (private PKI)"
    )
    parser.add_argument(
        "--certificate-chain",
        nargs="+",
        action="extend",
        default=[],
        metavar="CHAIN.pem",
        help="intermediate (and root) certificates embedded after --certificate",
    )
    keyless = parser.add_argument_group("Sigstore keyless (needs the network)")
    keyless.add_argument("--keyless", action="store_true", help="sign with Sigstore keyless")
    keyless.add_argument(
        "--identity-token", metavar="TOKEN", help="an OIDC identity token to sign with"
    )
    keyless.add_argument(
        "--use-ambient-credentials",
        action="store_true",
        help="use the CI's workload identity (e.g. GitHub Actions) when no token is given",
    )
    keyless.add_argument(
        "--oauth-force-oob",
        action="store_true",
        help="interactive OAuth flow without opening a browser (prints a URL and asks a code)",
    )
    keyless.add_argument("--client-id", metavar="ID", help="OIDC client id (default: sigstore)")
    keyless.add_argument("--client-secret", metavar="SECRET", help="OIDC client secret")
    keyless.add_argument(
        "--trust-config",
        metavar="trust_config.json",
        help="Sigstore client trust configuration (a private Sigstore instance)",
    )
    keyless.add_argument(
        "--use-staging", action="store_true", help="Sigstore's staging instance (tests only)"
    )
    parser.set_defaults(func=run_sign)


def _add_verify(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        epilog=_VERIFY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="verify a model directory against its signature (exit 1 when not verified)",
        description=(
            "Verify DIR exactly as admission does: the signature must be valid for a trusted "
            "key, certificate chain or keyless identity, and DIR's files must hash to the "
            "signed manifest (no changed, extra or missing file). Exit 0 verified, 1 not "
            "verified (the reason on one line), 2 bad usage. Nothing is fetched: keyless "
            "verification uses --trusted-root, or the public-good Sigstore root shipped with "
            "edgepolicy."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="the model directory")
    parser.add_argument("--signature", required=True, metavar="SIG", help="the signature file")
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="PUBLIC.pem",
        help="trusted EC public key (repeatable)",
    )
    parser.add_argument(
        "--certificate-chain",
        nargs="+",
        action="extend",
        default=[],
        metavar="CA.pem",
        help="trusted certificates: the chain must end at one of them (private PKI)",
    )
    parser.add_argument(
        "--identity", metavar="SUBJECT", help="keyless: the signer's email or URI, exactly"
    )
    parser.add_argument(
        "--identity-provider", metavar="ISSUER", help="keyless: the OIDC issuer URL, exactly"
    )
    parser.add_argument(
        "--trusted-root",
        metavar="trusted_root.json",
        help="keyless: a Sigstore trusted root (private or offline Sigstore)",
    )
    parser.set_defaults(func=run_verify)


def run_sign(args: argparse.Namespace) -> int:
    """Sign the directory as `args` says; print what was signed.

    Raises:
        UsageError: the flags do not form one signing form.
        ModelSigningError: a file is missing or unusable, or signing failed.
    """
    directory = Path(args.directory)
    signature = Path(args.signature)
    signed = sign_directory(directory, signature, _signing_method(args))
    if signed.file(FACTS_FILE_NAME) is None:
        print(
            f"edgepolicy: warning: {directory} has no {FACTS_FILE_NAME}: admission will not "
            "verify this model (run `edgepolicy model attest` first, then sign)",
            file=sys.stderr,
        )
    print(f"signed {_files(len(signed.files))} of {directory} into {signature}")
    return EXIT_VERIFIED


def _signing_method(args: argparse.Namespace) -> SigningMethod:
    keyless_flags = [
        flag
        for flag, value in (
            ("--identity-token", args.identity_token),
            ("--use-ambient-credentials", args.use_ambient_credentials),
            ("--oauth-force-oob", args.oauth_force_oob),
            ("--client-id", args.client_id),
            ("--client-secret", args.client_secret),
            ("--trust-config", args.trust_config),
            ("--use-staging", args.use_staging),
        )
        if value
    ]
    if args.keyless:
        if args.key or args.certificate or args.certificate_chain:
            raise UsageError("--keyless signs without --key, --certificate or --certificate-chain")
        return KeylessSigning(
            identity_token=args.identity_token,
            use_ambient_credentials=args.use_ambient_credentials,
            oauth_force_oob=args.oauth_force_oob,
            client_id=args.client_id,
            client_secret=args.client_secret,
            trust_config=Path(args.trust_config) if args.trust_config else None,
            use_staging=args.use_staging,
        )
    if keyless_flags:
        raise UsageError(f"{', '.join(keyless_flags)}: only with --keyless")
    if not args.key:
        raise UsageError("model sign needs --key PRIVATE.pem (with --certificate) or --keyless")
    if args.certificate:
        return CertificateSigning(
            private_key=Path(args.key),
            certificate=Path(args.certificate),
            certificate_chain=tuple(Path(path) for path in args.certificate_chain),
        )
    if args.certificate_chain:
        raise UsageError("--certificate-chain: only with --certificate")
    return KeySigning(private_key=Path(args.key))


def run_verify(args: argparse.Namespace) -> int:
    """Verify the directory against the signature and the trust the flags give.

    Returns 0 when verified, 1 when not (the reason printed on one line).

    Raises:
        UsageError: no trust given, or a key, certificate or trusted root file is unreadable.
        ModelSigningError: the directory or the signature file is missing or unreadable.
    """
    trust = _trust(args)
    directory = Path(args.directory)
    try:
        signed = verify_directory(directory, Path(args.signature), trust)
    except ModelSignatureRejected as rejected:
        print(f"edgepolicy: not verified: {rejected}", file=sys.stderr)
        return EXIT_NOT_VERIFIED
    print(f"verified: {directory} ({_files(len(signed.files))}) signed by {signed.signer}")
    return EXIT_VERIFIED


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _trust(args: argparse.Namespace) -> ModelTrust:
    if bool(args.identity) != bool(args.identity_provider):
        raise UsageError("--identity and --identity-provider go together")
    if args.trusted_root and not args.identity:
        raise UsageError("--trusted-root: only with --identity and --identity-provider")
    if not (args.public_key or args.certificate_chain or args.identity):
        raise UsageError(
            "model verify needs a trust: --public-key PUBLIC.pem, --certificate-chain CA.pem, "
            "or --identity SUBJECT --identity-provider ISSUER"
        )
    identities = (
        (Identity(issuer=args.identity_provider, subject_regexp=re.escape(args.identity)),)
        if args.identity
        else ()
    )
    return ModelTrust(
        public_keys=tuple(_public_key(path) for path in args.public_key),
        certificate_chains=tuple(_certificates(path) for path in args.certificate_chain),
        identities=identities,
        trusted_root=_trusted_root(args.trusted_root) if args.trusted_root else None,
    )


def _read(flag: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise UsageError(f"{flag} {path}: not a text (PEM or JSON) file") from error


def _public_key(path: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = _read("--public-key", path)
    if "PRIVATE KEY" in pem:
        raise UsageError(f"--public-key {path}: this is a private key; pass the public key")
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as error:
        raise UsageError(f"--public-key {path}: not a PEM public key") from error
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError(f"--public-key {path}: expected an EC (P-256, P-384, P-521) public key")
    return pem


def _certificates(path: str) -> str:
    from cryptography import x509

    pem = _read("--certificate-chain", path)
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError as error:
        raise UsageError(f"--certificate-chain {path}: not a PEM certificate") from error
    return pem


def _trusted_root(path: str) -> str:
    import json

    text = _read("--trusted-root", path)
    try:
        json.loads(text)
    except ValueError as error:
        raise UsageError(f"--trusted-root {path}: not JSON ({error})") from error
    return text
