"""The ``edgepolicy bundle`` subcommands: build, publish, pull, serve and watch.

A thin layer: it parses flags, calls the library in ``bundles``, prints one line per result and
returns the exit code (0 success, 1 the work failed, 2 bad usage or input via EdgepolicyError).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from edgepolicy.bundles.atomic_write import write_atomically
from edgepolicy.bundles.builder import build_bundle, write_bundle
from edgepolicy.bundles.commit_trust import commit_verifier
from edgepolicy.bundles.gitrepo import check_repository
from edgepolicy.bundles.hosting import ServiceOptions, serve
from edgepolicy.bundles.oci_artifact import pull_bundle
from edgepolicy.bundles.oci_registry import SCHEME, RegistryAccess, parse_reference
from edgepolicy.bundles.publish import (
    DEFAULT_BUNDLE_NAME,
    bundle_revision,
    parse_target,
    publish,
    read_token,
)
from edgepolicy.bundles.signing import SigningKey, load_signing_key
from edgepolicy.bundles.watch import WatchConfig, watch
from edgepolicy.cli import trust_flags
from edgepolicy.cli.flag_errors import from_flag
from edgepolicy.cli.policy_options import opa_binary
from edgepolicy.cli.tls_flags import check_tls_flags
from edgepolicy.errors import RegistryError, RollbackError, UsageError
from edgepolicy.kubeconfig import KubeconfigError

DEFAULT_PORT = 8282
DEFAULT_WORKDIR = Path.home() / ".cache" / "edgepolicy" / "watch"
USERNAME_ENV = "EDGEPOLICY_REGISTRY_USERNAME"
PASSWORD_ENV = "EDGEPOLICY_REGISTRY_PASSWORD"

_HELP_FORMAT = argparse.RawDescriptionHelpFormatter
BUNDLE_EXAMPLES = """\
Examples:
  edgepolicy bundle build --repo policies/ --out bundle.tar.gz --signing-key key.pem --key-id ci
  edgepolicy bundle publish bundle.tar.gz --to configmap:edgepolicy/policy-bundle
  edgepolicy bundle pull oci://registry.example.com/policies/edgepolicy:v1 -o bundle.tar.gz
  edgepolicy bundle serve --dir bundles/ --port 8282
  edgepolicy bundle watch --repo https://git.example.com/policies.git --to dir:bundles/
"""
BUILD_EXAMPLES = """\
Examples:
  edgepolicy bundle build --out bundle.tar.gz                       # HEAD of this repository
  edgepolicy bundle build --repo policies/ --rev v1.4.0 --out bundle.tar.gz \\
      --signing-key signing.pem --key-id ci
"""
PUBLISH_EXAMPLES = """\
Examples:
  edgepolicy bundle publish bundle.tar.gz --to dir:/srv/bundles
  edgepolicy bundle publish bundle.tar.gz --to https://bundles.example.com/ --token-file token
  edgepolicy bundle publish bundle.tar.gz --to configmap:edgepolicy/policy-bundle
  edgepolicy bundle publish bundle.tar.gz --to oci://registry.example.com/policies/edgepolicy:v1
  edgepolicy bundle publish bundle.tar.gz --to oci://127.0.0.1:5000/policies/edgepolicy:edge \\
      --username ci --password-file registry-password
"""
PULL_EXAMPLES = """\
Examples:
  edgepolicy bundle pull oci://registry.example.com/policies/edgepolicy:v1
  edgepolicy bundle pull oci://127.0.0.1:5000/policies/edgepolicy:edge -o bundle.tar.gz
  edgepolicy bundle pull oci://localhost:5000/policies/edgepolicy:edge --plain-http \\
      --username ci --password-file registry-password -o edge.tar.gz
"""
SERVE_EXAMPLES = """\
Examples:
  edgepolicy bundle serve --dir /srv/bundles
  edgepolicy bundle serve --dir /srv/bundles --host 0.0.0.0 --upload-token-file token
"""
WATCH_EXAMPLES = """\
Examples:
  edgepolicy bundle watch --repo https://git.example.com/policies.git --to dir:/srv/bundles
  edgepolicy bundle watch --repo ../policies --branch main --once \\
      --signing-key signing.pem --key-id ci --to configmap:edgepolicy/policy-bundle
"""


def add_parser(subparsers: Any) -> None:
    """Register ``bundle`` and its subcommands."""
    parser = subparsers.add_parser(
        "bundle",
        help="build, sign, publish and serve OPA policy bundles from Git",
        epilog=BUNDLE_EXAMPLES,
        formatter_class=_HELP_FORMAT,
    )
    sub = parser.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND")
    sub.required = True

    build = sub.add_parser(
        "build",
        help="build a (signed) bundle from a Git revision",
        epilog=BUILD_EXAMPLES,
        formatter_class=_HELP_FORMAT,
    )
    build.add_argument("--repo", default=".", help="policy repository (default: .)")
    build.add_argument("--rev", default="HEAD", help="Git revision to build (default: HEAD)")
    build.add_argument("--out", required=True, help="bundle file to write (.tar.gz)")
    _add_signing(build)
    _add_source(build)
    build.add_argument("--opa", help="OPA binary used to validate the policies")
    trust_flags.add_commit_trust(build)
    build.set_defaults(func=_build)

    pub = sub.add_parser(
        "publish",
        help="publish a bundle to a directory, URL, ConfigMap or OCI registry",
        epilog=PUBLISH_EXAMPLES,
        formatter_class=_HELP_FORMAT,
    )
    pub.add_argument("bundle", metavar="BUNDLE", help="bundle file (.tar.gz)")
    _add_publishing(pub)
    pub.add_argument(
        "--repo",
        help="policy repository that orders the commits for the rollback check (default: the "
        "repository of the current directory, if any)",
    )
    pub.set_defaults(func=_publish)

    pull = sub.add_parser(
        "pull",
        help="pull a bundle from an OCI registry",
        epilog=PULL_EXAMPLES,
        formatter_class=_HELP_FORMAT,
    )
    pull.add_argument(
        "reference", metavar="REFERENCE", help="oci://REGISTRY/REPOSITORY:TAG (or @sha256:...)"
    )
    pull.add_argument(
        "-o",
        "--out",
        "--output",
        dest="out",
        metavar="FILE",
        default=DEFAULT_BUNDLE_NAME,
        help=f"bundle file to write (default: {DEFAULT_BUNDLE_NAME})",
    )
    _add_registry(pull)
    pull.add_argument("--ca-file", help="CA bundle for the registry's HTTPS")
    pull.set_defaults(func=_pull)

    serve = sub.add_parser(
        "serve",
        help="serve a directory of bundles to OPA (long polling)",
        epilog=SERVE_EXAMPLES,
        formatter_class=_HELP_FORMAT,
    )
    serve.add_argument("--dir", required=True, help="directory holding the bundles")
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--upload-token-file", help="accept PUT uploads bearing the token in this file"
    )
    serve.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument(
        "--max-connections",
        type=int,
        default=ServiceOptions.max_connections,
        help="open connections held at once, long polls included; one more is answered 503 "
        f"(default: {ServiceOptions.max_connections})",
    )
    trust_flags.add_allow_rollback(serve, service=True)
    serve.set_defaults(func=_serve)

    watch_parser = sub.add_parser(
        "watch",
        help="GitOps loop: build and publish each new commit",
        epilog=WATCH_EXAMPLES,
        formatter_class=_HELP_FORMAT,
    )
    watch_parser.add_argument("--repo", required=True, help="repository URL or path")
    watch_parser.add_argument("--branch", default="main", help="branch to follow (default: main)")
    watch_parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between fetches (default: 10)"
    )
    watch_parser.add_argument("--once", action="store_true", help="run one round and exit")
    watch_parser.add_argument("--max-iterations", type=int, help="stop after N rounds")
    watch_parser.add_argument(
        "--workdir",
        default=str(DEFAULT_WORKDIR),
        help=f"where the mirror clone lives (default: {DEFAULT_WORKDIR})",
    )
    watch_parser.add_argument("--opa", help="OPA binary used to validate the policies")
    _add_signing(watch_parser)
    _add_source(watch_parser)
    _add_publishing(watch_parser, repeat=True)
    trust_flags.add_commit_trust(watch_parser)
    watch_parser.set_defaults(func=_watch)


def _add_signing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signing-key", help="PEM private key (RSA → RS256, EC P-256 → ES256)")
    parser.add_argument("--key-id", help="key id OPA's configuration names the public key by")


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        help="what the bundle's .manifest names as its source (default: the origin remote URL "
        "without credentials, or 'local')",
    )


def _source(args: argparse.Namespace) -> str | None:
    source: str | None = args.source
    if source is not None and not source.strip():
        raise UsageError("--source must not be empty")
    return source


def _add_publishing(parser: argparse.ArgumentParser, *, repeat: bool = False) -> None:
    parser.add_argument(
        "--to",
        required=True,
        action="append" if repeat else "store",
        help="dir:PATH, http(s)://URL (PUT), configmap:NAMESPACE/NAME or "
        "oci://REGISTRY/REPOSITORY:TAG" + (" (repeatable)" if repeat else ""),
    )
    parser.add_argument(
        "--name",
        default=DEFAULT_BUNDLE_NAME,
        help="file name inside a dir: target, and the title of an oci: target's layer "
        f"(default: {DEFAULT_BUNDLE_NAME})",
    )
    parser.add_argument(
        "--token-file", help="bearer token for http(s) targets (default: $EDGEPOLICY_BUNDLE_TOKEN)"
    )
    parser.add_argument("--ca-file", help="CA bundle for https and oci targets")
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig for configmap targets (default: $KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        help="kubeconfig context for configmap targets (default: current-context)",
    )
    _add_registry(parser)
    trust_flags.add_allow_rollback(parser)


def _add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--username",
        help=f"registry user for oci:// (default: ${USERNAME_ENV}; without it, the credentials "
        "of the Docker configuration, $DOCKER_CONFIG or ~/.docker/config.json)",
    )
    parser.add_argument(
        "--password-file",
        help="file holding the registry password or token of --username "
        f"(default: ${PASSWORD_ENV})",
    )
    parser.add_argument(
        "--plain-http",
        action="store_true",
        help="speak HTTP, not HTTPS, to the registry (a loopback registry without TLS is "
        "reached over HTTP anyway, as Docker does)",
    )


def _registry_access(args: argparse.Namespace) -> RegistryAccess:
    """Return how to reach registries: the flags, else the environment.

    Raises:
        UsageError: the password file cannot be read.
    """
    username = args.username or os.environ.get(USERNAME_ENV) or None
    password = os.environ.get(PASSWORD_ENV) or None
    if args.password_file:
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise UsageError(
                f"cannot read --password-file {args.password_file}: {error.strerror}"
            ) from error
    return RegistryAccess(username, password, plain_http=args.plain_http, ca_file=args.ca_file)


def _signing_key(args: argparse.Namespace) -> SigningKey | None:
    if args.signing_key is None:
        if args.key_id:
            raise UsageError("--key-id needs --signing-key")
        return None
    if not args.key_id:
        raise UsageError("--key-id is required with --signing-key (OPA finds the key by its id)")
    return load_signing_key(args.signing_key, args.key_id)


def _build(args: argparse.Namespace) -> int:
    key = _signing_key(args)
    with commit_verifier(trust_flags.trust_policy(args)) as verifier:
        bundle = build_bundle(
            Path(args.repo),
            args.rev,
            opa=opa_binary(args),
            signing_key=key,
            source=_source(args),
            verifier=verifier,
            since=trust_flags.since(args),
        )
    write_bundle(bundle, Path(args.out))
    signed = f"signed ({key.algorithm}, key id {key.key_id})" if key else "unsigned"
    by = ""
    if verifier is not None:
        by = f", commit signed by {bundle.signer or 'no allowed key (not required)'}"
    print(f"built {args.out}: revision {bundle.revision}, {bundle.policies} policies, {signed}{by}")
    return 0


def _current_repository() -> Path | None:
    """Return the current directory when it is in a Git repository, else None."""
    try:
        check_repository(Path.cwd())
    except UsageError:
        return None
    return Path.cwd()


def _publish(args: argparse.Namespace) -> int:
    with from_flag("--to"):
        target = parse_target(args.to)
    try:
        archive = Path(args.bundle).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read bundle {args.bundle}: {error.strerror}") from error
    try:
        where = publish(
            archive,
            target,
            bundle_name=args.name,
            token=read_token(args.token_file),
            ca_file=args.ca_file,
            kubeconfig=args.kubeconfig,
            context=args.context,
            source=args.bundle,
            repo=Path(args.repo) if args.repo else _current_repository(),
            allow_rollback=args.allow_rollback,
            registry=_registry_access(args),
        )
    except KubeconfigError as error:
        given = (("--kubeconfig", args.kubeconfig), ("--context", args.context))
        flags = " ".join(flag for flag, value in given if value)
        raise UsageError(f"{flags}: {error}" if flags else str(error)) from error
    except RollbackError as error:
        # The library says "allow the rollback explicitly"; the command line says how.
        raise RollbackError(f"{error} (--allow-rollback)") from error
    print(f"published {where}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    if not args.reference.startswith(SCHEME):
        raise UsageError(f"REFERENCE {args.reference!r}: expected oci://REGISTRY/REPOSITORY:TAG")
    ref = parse_reference(args.reference)
    with _registry_access(args).client(ref, "pull") as client:
        pulled = pull_bundle(client)
    if pulled is None:
        raise RegistryError(f"{ref}: not found in the registry (HTTP 404)")
    revision = bundle_revision(pulled.archive, str(ref))
    write_atomically(Path(args.out), pulled.archive)
    print(f"pulled {ref}@{pulled.manifest_digest} to {args.out} (revision {revision})")
    return 0


def _stop_on_term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    token = None
    if args.upload_token_file:
        token = read_token(args.upload_token_file)
        if not token:
            raise UsageError(f"upload token file {args.upload_token_file} is empty")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None:
        check_tls_flags(Path(args.tls_cert), Path(args.tls_key))
    if args.max_connections < 1:
        raise UsageError(f"--max-connections must be at least 1, got {args.max_connections}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, got {args.port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = ServiceOptions(
        Path(args.dir),
        args.host,
        args.port,
        token,
        allow_rollback=args.allow_rollback,
        cert_file=Path(args.tls_cert) if args.tls_cert else None,
        key_file=Path(args.tls_key) if args.tls_key else None,
        max_connections=args.max_connections,
    )
    serve(options, lambda url: print(f"serving bundles from {args.dir} at {url}/", flush=True))
    return 0


def _report(line: str) -> None:
    print(line, flush=True)


def _report_error(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _watch(args: argparse.Namespace) -> int:
    if args.once and args.max_iterations is not None:
        raise UsageError("use either --once or --max-iterations")
    with from_flag("--to"):
        targets = [parse_target(t) for t in args.to]
    config = WatchConfig(
        source=args.repo,
        branch=args.branch,
        targets=targets,
        opa=opa_binary(args),
        workdir=Path(args.workdir),
        signing_key=_signing_key(args),
        bundle_name=args.name,
        interval=args.interval,
        max_iterations=1 if args.once else args.max_iterations,
        token=read_token(args.token_file),
        ca_file=args.ca_file,
        kubeconfig=args.kubeconfig,
        kube_context=args.context,
        bundle_source=_source(args),
        trust=trust_flags.trust_policy(args),
        since=trust_flags.since(args),
        allow_rollback=args.allow_rollback,
        registry=_registry_access(args),
    )
    signal.signal(signal.SIGTERM, _stop_on_term)
    try:
        state = watch(config, _report, _report_error)
    except KeyboardInterrupt:
        return 0
    if config.max_iterations is not None and state.errors and state.published is None:
        return 1
    return 0
