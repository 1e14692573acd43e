"""Publish a built bundle: into a directory, to an HTTP(S) endpoint (PUT), into a ConfigMap,
or to an OCI registry.

Targets are written as ``dir:PATH``, ``http(s)://URL``, ``configmap:NAMESPACE/NAME`` or
``oci://REGISTRY/REPOSITORY:TAG``. Every target is replaced atomically from the reader's point
of view.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import urllib3
from edgepolicy.bundles import configmap
from edgepolicy.bundles.gitrepo import check_repository, redact_url
from edgepolicy.bundles.oci_artifact import current_bundle, push_bundle
from edgepolicy.bundles.oci_registry import SCHEME, RegistryAccess, parse_reference
from edgepolicy.bundles.rollback import check_replacement, read_revision, replace_bundle_file

from edgepolicy import kube
from edgepolicy.errors import BundleError, UsageError

TOKEN_ENV = "EDGEPOLICY_BUNDLE_TOKEN"
DEFAULT_BUNDLE_NAME = "edgepolicy.tar.gz"
_TIMEOUT = urllib3.Timeout(connect=5.0, read=60.0)
_SHOWN_BODY_BYTES = 1000  # of an error answer (a refused rollback names three revisions)


@dataclass(frozen=True)
class Target:
    """Where to publish: ``kind`` is ``dir``, ``http``, ``configmap`` or ``oci``."""

    kind: str
    location: str


def parse_target(text: str) -> Target:
    """Parse a ``--to`` value.

    Raises:
        UsageError: the value is not one of the four forms, or not a valid OCI reference.
    """
    if text.startswith("dir:") and len(text) > 4:
        return Target("dir", text[4:])
    if text.startswith(("http://", "https://")):
        return Target("http", text)
    if text.startswith(SCHEME):
        return Target("oci", str(parse_reference(text)))
    if text.startswith("configmap:"):
        namespace, _, name = text[len("configmap:") :].partition("/")
        if namespace and name and "/" not in name:
            return Target("configmap", f"{namespace}/{name}")
    raise UsageError(
        f"{redact_url(text)!r}: not a publish target; expected dir:PATH, http(s)://URL, "
        "configmap:NAMESPACE/NAME or oci://REGISTRY/REPOSITORY:TAG"
    )


def bundle_revision(archive: bytes, source: str) -> str:
    """Return the ``.manifest`` revision of a bundle archive.

    Raises:
        BundleError: the archive is unreadable or has no manifest with a revision.
    """
    return read_revision(archive, source).revision


def _dir_path(location: str, bundle_name: str) -> Path:
    path = Path(location)
    return path if path.name.endswith(".tar.gz") else path / bundle_name


def _auth_headers(url: str, token: str | None) -> dict[str, str]:
    """Return the headers authenticating to ``url``: Basic from its user and password, or Bearer.

    Raises:
        UsageError: the URL carries credentials and a bearer token is given too.
    """
    parts = urlsplit(url)
    if parts.username is not None:
        if token:
            raise UsageError(
                f"{redact_url(url)}: credentials both in the URL and as a bearer token; "
                "give one of the two"
            )
        user, password = unquote(parts.username), unquote(parts.password or "")
        return dict(urllib3.util.make_headers(basic_auth=f"{user}:{password}"))
    return {"Authorization": f"Bearer {token}"} if token else {}


def _request(
    method: str, url: str, body: bytes | None, token: str | None, ca_file: str | None
) -> urllib3.BaseHTTPResponse:
    """Send ``method url`` (credentials as :func:`_auth_headers`); messages hide credentials.

    Raises:
        UsageError: credentials are given twice.
        BundleError: the server is unreachable.
    """
    shown = redact_url(url)
    headers = _auth_headers(url, token)
    if body is not None:
        headers["Content-Type"] = "application/gzip"
    pool = urllib3.PoolManager(ca_certs=ca_file, retries=False, timeout=_TIMEOUT)
    try:
        return pool.request(method, shown, body=body, headers=headers)
    except urllib3.exceptions.HTTPError as error:
        raise BundleError(f"cannot reach {shown}: {error}") from error
    finally:
        pool.clear()


def _put(url: str, archive: bytes, token: str | None, ca_file: str | None) -> None:
    """PUT ``archive`` to ``url``; a user and password in the URL are sent as Basic auth.

    Messages name the URL without its credentials.

    Raises:
        UsageError: the URL carries credentials and a bearer token is given too.
        BundleError: the server is unreachable or answers with an error status.
    """
    response = _request("PUT", url, archive, token, ca_file)
    if response.status >= 300:
        detail = response.data[:_SHOWN_BODY_BYTES].decode("utf-8", "replace").strip()
        raise BundleError(f"PUT {redact_url(url)} failed: HTTP {response.status} {detail}")


def _get_current(url: str, token: str | None, ca_file: str | None) -> bytes | None:
    """Return the bundle ``url`` serves now, or None when it serves none we can read.

    Only a 200 answer counts: an upload endpoint without GET (or one that is unreachable, which
    the PUT then reports) leaves the check to the service, which ``bundle serve`` makes.

    Raises:
        UsageError: credentials are given twice.
    """
    try:
        response = _request("GET", url, None, token, ca_file)
    except BundleError:
        return None
    return bytes(response.data) if response.status == 200 else None


def read_token(token_file: str | None) -> str | None:
    """Return the upload token from ``token_file`` or ``$EDGEPOLICY_BUNDLE_TOKEN`` (or None).

    Raises:
        UsageError: the token file cannot be read.
    """
    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise UsageError(f"cannot read token file {token_file}: {error.strerror}") from error
    return os.environ.get(TOKEN_ENV) or None


def _publish_oci(
    archive: bytes,
    location: str,
    access: RegistryAccess,
    *,
    title: str,
    source: str,
    repo: Path | None,
    allow_rollback: bool,
) -> str:
    """Push ``archive`` to the tag ``location`` unless the tag holds a newer bundle.

    The check and the push are two steps: the distribution API has no conditional tag update,
    so two publishers of one tag are not serialised (as for ``http(s):`` targets).
    """
    ref = parse_reference(location)
    with access.client(ref, "pull,push") as client:
        if not allow_rollback:
            check_replacement(current_bundle(client), archive, where=str(ref), repo=repo)
        digest = push_bundle(client, archive, title=title, source=source)
    return f"{ref}@{digest} (revision {bundle_revision(archive, source)})"


def publish(
    archive: bytes,
    target: Target,
    *,
    bundle_name: str = DEFAULT_BUNDLE_NAME,
    token: str | None = None,
    ca_file: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    source: str = "bundle",
    repo: Path | None = None,
    allow_rollback: bool = False,
    registry: RegistryAccess | None = None,
) -> str:
    """Publish ``archive`` to ``target`` and return a description of where it went.

    ``bundle_name`` is the file name used when a ``dir:`` target is a directory; ``source``
    names the archive (its file, say) in errors. Unless ``allow_rollback``, the bundle the
    target holds is read first and the new one must not be older
    (:mod:`edgepolicy.bundles.rollback`; ``repo`` is the policy repository that orders the commits,
    if available). A ``configmap:`` target is reached through ``context`` (default: the current
    one) of ``kubeconfig``, else of the files kubectl reads. An ``oci:`` target is pushed as the
    artifact OPA's OCI downloader reads (:mod:`edgepolicy.bundles.oci_artifact`; ``bundle_name``
    titles its layer), reached with ``registry`` (default: the Docker configuration's credentials,
    HTTPS with ``ca_file``).

    Raises:
        RollbackError: the new bundle is older than the one the target holds.
        BundleError: the archive is not a bundle, or the target refused or failed.
        RegistryError: the registry refused or failed (a BundleError).
        UsageError: kubeconfig, token or registry credential problems, or ``repo`` is not a
            Git repository.
    """
    revision = bundle_revision(archive, source)
    if repo is not None:
        check_repository(repo)
    if target.kind == "dir":
        path = _dir_path(target.location, bundle_name)
        replace_bundle_file(path, archive, repo=repo, allow_rollback=allow_rollback)
        return f"{path} (revision {revision})"
    if target.kind == "http":
        shown = redact_url(target.location)
        if not allow_rollback:
            current = _get_current(target.location, token, ca_file)
            check_replacement(current, archive, where=shown, repo=repo)
        _put(target.location, archive, token, ca_file)
        return f"{shown} (revision {revision})"
    if target.kind == "oci":
        return _publish_oci(
            archive, target.location, registry or RegistryAccess(ca_file=ca_file),
            title=bundle_name, source=source, repo=repo, allow_rollback=allow_rollback,
        )  # fmt: skip
    namespace, name = target.location.split("/")
    api = kube.from_kubeconfig(Path(kubeconfig) if kubeconfig else None, context=context)
    try:
        version = None
        if not allow_rollback:
            current, version = configmap.current_bundle(api, namespace, name)
            where = f"ConfigMap {namespace}/{name}"
            check_replacement(current, archive, where=where, repo=repo)
        configmap.publish_configmap(
            api, namespace, name, archive, revision, resource_version=version
        )
    finally:
        api.close()
    return f"ConfigMap {namespace}/{name} (revision {revision})"
