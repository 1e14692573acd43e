"""Kubeconfig files read as kubectl reads them: the file list, the merge, the chosen context.

An explicit file (``--kubeconfig``) is read alone and must exist. Otherwise every file of
``$KUBECONFIG`` (``os.pathsep``-separated, duplicates and empty entries dropped, missing files
skipped) is merged, or ``~/.kube/config`` is read. The merge follows client-go's loader: for
clusters, users and contexts the first file to define a name wins, whole (a later file's entry of
that name is ignored, even its fields the first left unset); ``current-context`` comes from the
first file that sets it. A name defined twice in one file is an error. Relative paths in an entry
(``certificate-authority``, ``client-certificate``, ``client-key``, ``tokenFile``, and an exec
``command`` containing a ``/``) are resolved against the directory of the file that defined it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgepolicy.errors import UsageError

KUBECONFIG_ENV = "KUBECONFIG"
_SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))
_CLUSTER_PATHS = ("certificate-authority",)
_USER_PATHS = ("client-certificate", "client-key", "tokenFile")


class KubeconfigError(UsageError):
    """A kubeconfig cannot be read, or does not say how to reach a cluster."""


@dataclass(frozen=True)
class Kubeconfig:
    """Merged kubeconfig files: entries by name (paths already absolute) and the files read."""

    files: tuple[Path, ...]
    clusters: Mapping[str, Mapping[str, Any]]
    users: Mapping[str, Mapping[str, Any]]
    contexts: Mapping[str, Mapping[str, Any]]
    current_context: str

    @property
    def where(self) -> str:
        """The files, as messages name them."""
        return "kubeconfig " + ", ".join(str(path) for path in self.files)


@dataclass(frozen=True)
class ClusterAccess:
    """What one context says: the cluster and the user (None: anonymous) it uses."""

    context: str
    cluster_name: str
    cluster: Mapping[str, Any]
    user_name: str | None
    user: Mapping[str, Any]
    where: str


def search_paths(explicit: Path | None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Return the files kubectl reads: ``explicit`` alone, else the ``$KUBECONFIG`` list
    (duplicates and empty entries dropped), else ``~/.kube/config``."""
    if explicit is not None:
        return [explicit]
    env = (os.environ if environ is None else environ).get(KUBECONFIG_ENV, "")
    paths: list[Path] = []
    for entry in env.split(os.pathsep):
        if entry and Path(entry) not in paths:
            paths.append(Path(entry))
    return paths or [Path.home() / ".kube" / "config"]


def load(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> Kubeconfig:
    """Read and merge the kubeconfig files of :func:`search_paths`.

    Raises:
        KubeconfigError: the explicit file is missing, no listed file exists, a file cannot be
            read or parsed, or a file defines a name twice.
    """
    paths = search_paths(explicit, environ)
    documents: list[tuple[Path, Mapping[str, Any]]] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            if explicit is not None:
                raise KubeconfigError(f"kubeconfig {path}: no such file") from error
            continue  # kubectl skips missing files of the list
        except (OSError, UnicodeDecodeError) as error:
            raise KubeconfigError(f"kubeconfig {path}: cannot read it: {error}") from error
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise KubeconfigError(f"kubeconfig {path}: not valid YAML: {error}") from error
        if document is None:
            document = {}
        if not isinstance(document, Mapping):
            raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig (expected a mapping)")
        documents.append((path, document))
    if not documents:
        tried = ", ".join(str(path) for path in paths)
        raise KubeconfigError(f"no kubeconfig found (tried {tried})")
    return merge(documents)


def merge(documents: Sequence[tuple[Path, Mapping[str, Any]]]) -> Kubeconfig:
    """Merge parsed kubeconfig documents in precedence order (first wins), as client-go does.

    Raises:
        KubeconfigError: a list is not a list of named entries, or names one entry twice.
    """
    merged: dict[str, dict[str, Mapping[str, Any]]] = {name: {} for name, _ in _SECTIONS}
    current = ""
    for path, document in documents:
        for list_name, key in _SECTIONS:
            for name, entry in _named_entries(document, list_name, key, path).items():
                merged[list_name].setdefault(name, _resolved(entry, key, path.parent))
        if not current and document.get("current-context"):
            current = str(document["current-context"])
    return Kubeconfig(
        files=tuple(path for path, _ in documents),
        clusters=merged["clusters"],
        users=merged["users"],
        contexts=merged["contexts"],
        current_context=current,
    )


def select(config: Kubeconfig, context: str | None = None) -> ClusterAccess:
    """Return the cluster and user of ``context`` (default: the current context).

    Raises:
        KubeconfigError: no context is chosen, or the context, its cluster or its user is not
            defined.
    """
    where = config.where
    name = context or config.current_context
    if not name:
        raise KubeconfigError(f"{where}: no current-context, and no context was chosen")
    entry = config.contexts.get(name)
    if entry is None:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise KubeconfigError(f"{where}: no context named {name!r} (contexts: {known})")
    cluster_name = str(entry.get("cluster") or "")
    cluster = config.clusters.get(cluster_name)
    if cluster is None:
        raise KubeconfigError(f"{where}: context {name!r}: no cluster named {cluster_name!r}")
    user_name = str(entry["user"]) if entry.get("user") else None
    user: Mapping[str, Any] = {}
    if user_name is not None:
        found = config.users.get(user_name)
        if found is None:
            raise KubeconfigError(f"{where}: context {name!r}: no user named {user_name!r}")
        user = found
    return ClusterAccess(name, cluster_name, cluster, user_name, user, where)


def _named_entries(
    document: Mapping[str, Any], list_name: str, key: str, path: Path
) -> dict[str, Mapping[str, Any]]:
    entries = document.get(list_name) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"kubeconfig {path}: {list_name} must be a list")
    found: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise KubeconfigError(f"kubeconfig {path}: every entry of {list_name} needs a name")
        name = str(entry["name"])
        if name in found:
            raise KubeconfigError(f"kubeconfig {path}: duplicate name {name!r} in {list_name}")
        value = entry.get(key) or {}
        if not isinstance(value, Mapping):
            raise KubeconfigError(f"kubeconfig {path}: {list_name} {name!r}: {key} must be a map")
        found[name] = value
    return found


def _resolved(entry: Mapping[str, Any], key: str, base: Path) -> Mapping[str, Any]:
    """Return ``entry`` with its relative file references made absolute against ``base``."""
    fields = _CLUSTER_PATHS if key == "cluster" else _USER_PATHS if key == "user" else ()
    resolved = dict(entry)
    for field in fields:
        if resolved.get(field):
            resolved[field] = str(_absolute(str(resolved[field]), base))
    plugin = resolved.get("exec")
    if key == "user" and isinstance(plugin, Mapping):
        command = str(plugin.get("command") or "")
        if "/" in command:  # a bare name is looked up on PATH, as kubectl does
            resolved["exec"] = {**plugin, "command": str(_absolute(command, base))}
    return resolved


def _absolute(reference: str, base: Path) -> Path:
    path = Path(reference)
    return path if path.is_absolute() else base.resolve() / path
