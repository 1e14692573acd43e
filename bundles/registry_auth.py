"""Credentials for an OCI registry, and the Docker token flow that turns them into access.

Where credentials come from, first match wins:

1. given explicitly (``--username`` and a password from a file or
   ``$EDGEPOLICY_REGISTRY_PASSWORD``, see the CLI);
2. the Docker client configuration (``$DOCKER_CONFIG/config.json``, else
   ``~/.docker/config.json``): ``credHelpers[REGISTRY]``, else an ``auths`` entry for the
   registry (``auth`` = base64 ``user:password``, or ``username``/``password``, or an
   ``identitytoken``), else ``credsStore``; a helper is ``docker-credential-NAME get``;
3. none: anonymous access.

A registry answers ``401`` with ``WWW-Authenticate``: ``Basic`` asks for the user and password
on every request; ``Bearer realm=...,service=...,scope=...`` asks for a token from the realm
(the user and password as Basic auth there, or an identity token as an OAuth2 refresh token).
Secrets never appear in a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgepolicy.errors import RegistryError, UsageError

DOCKER_HUB = "docker.io"
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HELPER_SECONDS = 30
_TOKEN_USER = "<token>"  # what a credential helper answers as the user of an identity token
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class RegistryCredentials:
    """A user and password, or an identity (refresh) token; ``origin`` says where they came from."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    origin: str = "anonymous"

    @property
    def has_password(self) -> bool:
        """Return whether a user and password are known."""
        return bool(self.username) and self.password is not None


ANONYMOUS = RegistryCredentials()


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` challenge: the scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Return the first challenge of a ``WWW-Authenticate`` value, or None when there is none."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme or "=" in scheme:
        return None
    params = {
        match.group(1).lower(): (
            re.sub(r"\\(.)", r"\1", match.group(2))
            if match.group(2) is not None
            else match.group(3)
        )
        for match in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def docker_config_path() -> Path:
    """Return the Docker client configuration file the docker CLI reads."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def _auth_keys(registry: str) -> tuple[str, ...]:
    """Return the ``auths`` keys docker writes for ``registry`` (Docker Hub has its own)."""
    if registry in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io"):
        return (_DOCKER_HUB_KEY, DOCKER_HUB, "index.docker.io", "registry-1.docker.io")
    return (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/")


def _from_auths_entry(entry: Any, where: str) -> RegistryCredentials | None:
    """Return the credentials of one ``auths`` entry (None when it holds none).

    Raises:
        UsageError: the entry is malformed.
    """
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: expected an object")
    token = entry.get("identitytoken")
    username, password = entry.get("username"), entry.get("password")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, colon, password = (
                base64.b64decode(encoded, validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError) as error:
            raise UsageError(f"{where}.auth: not base64 of user:password") from error
        if not colon:
            raise UsageError(f"{where}.auth: not base64 of user:password")
    if isinstance(token, str) and token:
        return RegistryCredentials(
            username if isinstance(username, str) else None, None, token, origin=where
        )
    if isinstance(username, str) and username and isinstance(password, str):
        return RegistryCredentials(username, password, origin=where)
    return None


def _from_helper(helper: str, registry: str, where: str) -> RegistryCredentials | None:
    """Ask ``docker-credential-HELPER get`` for the credentials of ``registry``.

    Raises:
        UsageError: the helper is not installed, fails, or answers nonsense.
    """
    program = f"docker-credential-{helper}"
    path = shutil.which(program)
    if path is None:
        raise UsageError(f"{where}: credential helper {program} is not installed")
    server = _DOCKER_HUB_KEY if registry == DOCKER_HUB else registry
    try:
        answer = subprocess.run(
            [path, "get"], input=server, capture_output=True, text=True,
            timeout=_HELPER_SECONDS, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UsageError(f"{where}: credential helper {program} failed: {error}") from error
    if answer.returncode != 0:
        if "credentials not found" in (answer.stdout + answer.stderr).lower():
            return None
        raise UsageError(f"{where}: credential helper {program} failed (exit {answer.returncode})")
    try:
        found = json.loads(answer.stdout)
        username, secret = found["Username"], found["Secret"]
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{where}: credential helper {program} gave no Username/Secret") from error
    if not isinstance(username, str) or not isinstance(secret, str):
        raise UsageError(f"{where}: credential helper {program} gave no Username/Secret")
    if username == _TOKEN_USER:
        return RegistryCredentials(None, None, secret, origin=f"{program}")
    return RegistryCredentials(username, secret, origin=f"{program}")


def from_docker_config(registry: str, path: Path | None = None) -> RegistryCredentials:
    """Return the credentials the Docker configuration at ``path`` holds for ``registry``.

    A missing file means anonymous access.

    Raises:
        UsageError: the file is unreadable or malformed, or its credential helper fails.
    """
    path = path or docker_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ANONYMOUS
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    try:
        config = json.loads(text)
    except ValueError as error:
        raise UsageError(f"{path}: not JSON ({error})") from error
    if not isinstance(config, dict):
        raise UsageError(f"{path}: expected a JSON object")
    helpers = config.get("credHelpers") or {}
    for key in _auth_keys(registry):
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            found = _from_helper(helpers[key], registry, f"{path} credHelpers[{key!r}]")
            return found or ANONYMOUS
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise UsageError(f"{path}: auths must be an object")
    for key in _auth_keys(registry):
        if key in auths:
            found = _from_auths_entry(auths[key], f"{path} auths[{key!r}]")
            if found is not None:
                return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, registry, f"{path} credsStore") or ANONYMOUS
    return ANONYMOUS


def resolve_credentials(
    registry: str, username: str | None, password: str | None
) -> RegistryCredentials:
    """Return the explicit ``username``/``password`` if given, else those of the Docker config.

    Raises:
        UsageError: only one of the user name and password is given, or the Docker
            configuration is unusable.
    """
    if username or password is not None:
        if not username or password is None:
            raise UsageError(
                f"registry {registry}: a user name needs a password and a password a user name"
            )
        return RegistryCredentials(username, password, origin="the command line")
    return from_docker_config(registry)


def basic_header(credentials: RegistryCredentials) -> str:
    """Return the ``Authorization`` value of HTTP Basic auth with ``credentials``."""
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def check_realm(realm: str, *, plain_http: bool) -> None:
    """Check that credentials may go to the token service ``realm``.

    It must be an HTTPS URL; an HTTP one only for a registry reached over HTTP itself (a
    registry on TLS must not send the credentials it protects over plain HTTP).

    Raises:
        RegistryError: the realm is not such a URL.
    """
    parts = urlsplit(realm)
    allowed = ("https", "http") if plain_http else ("https",)
    if parts.scheme not in allowed or not parts.netloc:
        raise RegistryError(
            f"the registry's token service {realm!r} is not an {' or '.join(allowed)} URL; "
            "refusing to send credentials there"
        )


def token_from_answer(body: bytes, realm: str) -> str:
    """Return the token of a token service's JSON answer (``token`` or ``access_token``).

    Raises:
        RegistryError: the answer holds no token.
    """
    try:
        answer = json.loads(body)
    except ValueError as error:
        raise RegistryError(f"token service {realm}: answer is not JSON") from error
    token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"token service {realm}: answer holds no token")
    return token
