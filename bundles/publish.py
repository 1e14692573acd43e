"""Publish a built bundle: into a directory, to an HTTP(S) endpoint (PUT), or into a ConfigMap.

Targets are written as ``dir:PATH``, ``http(s)://URL`` or ``configmap:NAMESPACE/NAME``. Every
target is replaced atomically from the reader's point of view.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import urllib3

from bundles import configmap
from bundles.archive import read_tar_gz, write_atomically
from bundles.gitrepo import redact_url
from bundles.layout import MANIFEST
from edgepolicy import kube
from edgepolicy.errors import BundleError, UsageError

TOKEN_ENV = "EDGEPOLICY_BUNDLE_TOKEN"
DEFAULT_BUNDLE_NAME = "edgepolicy.tar.gz"
_TIMEOUT = urllib3.Timeout(connect=5.0, read=60.0)


@dataclass(frozen=True)
class Target:
    """Where to publish: ``kind`` is ``dir``, ``http`` or ``configmap``."""

    kind: str
    location: str


def parse_target(text: str) -> Target:
    """Parse a ``--to`` value.

    Raises:
        UsageError: the value is not one of the three forms.
    """
    if text.startswith("dir:") and len(text) > 4:
        return Target("dir", text[4:])
    if text.startswith(("http://", "https://")):
        return Target("http", text)
    if text.startswith("configmap:"):
        namespace, _, name = text[len("configmap:") :].partition("/")
        if namespace and name and "/" not in name:
            return Target("configmap", f"{namespace}/{name}")
    raise UsageError(
        f"--to {redact_url(text)!r}: expected dir:PATH, http(s)://URL or configmap:NAMESPACE/NAME"
    )


def bundle_revision(archive: bytes, source: str) -> str:
    """Return the ``.manifest`` revision of a bundle archive.

    Raises:
        BundleError: the archive is unreadable or has no manifest with a revision.
    """
    files = read_tar_gz(archive, source=source)
    try:
        manifest = json.loads(files[MANIFEST])
        revision = manifest["revision"]
    except (KeyError, ValueError, TypeError) as error:
        raise BundleError(f"{source}: bundle has no .manifest with a revision") from error
    if not isinstance(revision, str):
        raise BundleError(f"{source}: .manifest revision must be a string")
    return revision


def _dir_path(location: str, bundle_name: str) -> Path:
    path = Path(location)
    return path if path.name.endswith(".tar.gz") else path / bundle_name


def _put(url: str, archive: bytes, token: str | None, ca_file: str | None) -> None:
    """PUT ``archive`` to ``url``; a user and password in the URL are sent as Basic auth.

    Messages name the URL without its credentials.

    Raises:
        UsageError: the URL carries credentials and a bearer token is given too.
        BundleError: the server is unreachable or answers with an error status.
    """
    shown = redact_url(url)
    parts = urlsplit(url)
    headers = {"Content-Type": "application/gzip"}
    if parts.username is not None:
        if token:
            raise UsageError(
                f"--to {shown}: give credentials either in the URL or as a bearer token "
                f"(--token-file, ${TOKEN_ENV}), not both"
            )
        user, password = unquote(parts.username), unquote(parts.password or "")
        headers.update(urllib3.util.make_headers(basic_auth=f"{user}:{password}"))
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    pool = urllib3.PoolManager(ca_certs=ca_file, retries=False, timeout=_TIMEOUT)
    try:
        response = pool.request("PUT", shown, body=archive, headers=headers)
    except urllib3.exceptions.HTTPError as error:
        raise BundleError(f"cannot reach {shown}: {error}") from error
    finally:
        pool.clear()
    if response.status >= 300:
        detail = response.data[:200].decode("utf-8", "replace").strip()
        raise BundleError(f"PUT {shown} failed: HTTP {response.status} {detail}")


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
) -> str:
    """Publish ``archive`` to ``target`` and return a description of where it went.

    ``bundle_name`` is the file name used when a ``dir:`` target is a directory; ``source``
    names the archive (its file, say) in errors. A ``configmap:`` target is reached through
    ``context`` (default: the current one) of ``kubeconfig``, else of the files kubectl reads.

    Raises:
        BundleError: the archive is not a bundle, or the target refused or failed.
        UsageError: kubeconfig or token problems.
    """
    revision = bundle_revision(archive, source)
    if target.kind == "dir":
        path = _dir_path(target.location, bundle_name)
        write_atomically(path, archive)
        return f"{path} (revision {revision})"
    if target.kind == "http":
        _put(target.location, archive, token, ca_file)
        return f"{redact_url(target.location)} (revision {revision})"
    namespace, name = target.location.split("/")
    api = kube.from_kubeconfig(Path(kubeconfig) if kubeconfig else None, context=context)
    try:
        configmap.publish_configmap(api, namespace, name, archive, revision)
    finally:
        api.close()
    return f"ConfigMap {namespace}/{name} (revision {revision})"
