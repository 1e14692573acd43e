"""Kubernetes exec credential plugins (``users[].user.exec``), run as client-go runs them.

Cloud kubeconfigs (``aws eks get-token``, ``gke-gcloud-auth-plugin``, ``kubelogin``) name a
command that prints an ``ExecCredential`` (``client.authentication.k8s.io/v1`` or ``v1beta1``)
holding a bearer token or a client certificate and key. The plugin runs with the process's
environment plus its ``env`` entries and ``KUBERNETES_EXEC_INFO`` (the request: whether it may be
interactive and, with ``provideClusterInfo``, the cluster). edgepolicy never runs a plugin
interactively: standard input is closed, ``interactiveMode: Always`` is refused, ``IfAvailable``
runs without a terminal. The credential is kept until its ``expirationTimestamp`` passes (for
ever without one) or the API server answers 401, then the plugin runs again. The plugin's
standard error passes through (its prompts and warnings are the user's); its output, holding the
secret, is never logged or put in a message.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgepolicy.errors import EdgepolicyError

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_INFO_ENV = "KUBERNETES_EXEC_INFO"
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
# The cluster extension whose value is handed to the plugin as spec.cluster.config.
CLUSTER_CONFIG_EXTENSION = "client.authentication.k8s.io/exec"
PLUGIN_TIMEOUT_SECONDS = 60.0

Clock = Callable[[], datetime.datetime]


class CredentialPluginError(EdgepolicyError):
    """An exec credential plugin is misconfigured, failed, or printed no usable credential."""


@dataclass(frozen=True)
class PluginCredential:
    """What a plugin returned: a token and/or a client certificate and key (PEM)."""

    token: str | None
    cert_pem: bytes | None
    key_pem: bytes | None
    expires_at: datetime.datetime | None

    def expired(self, now: datetime.datetime) -> bool:
        """True once ``now`` is past the expiration (never without one)."""
        return self.expires_at is not None and now > self.expires_at


@dataclass(frozen=True)
class PluginConfig:
    """A user's ``exec`` section, checked; ``cluster`` is the spec.cluster handed to the plugin
    when ``provideClusterInfo`` is true."""

    user: str
    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str
    interactive_mode: str
    install_hint: str
    cluster: Mapping[str, Any] | None

    @classmethod
    def parse(
        cls, user: str, section: Mapping[str, Any], cluster: Mapping[str, Any] | None
    ) -> PluginConfig:
        """Check an ``exec`` section as kubectl does (command and apiVersion required, env
        entries named, ``interactiveMode`` required for v1 and defaulting to ``IfAvailable``
        for v1beta1).

        Raises:
            CredentialPluginError: the section breaks one of these rules (naming the user).
        """
        where = f"exec credential plugin of user {user!r}"
        command = section.get("command")
        if not isinstance(command, str) or not command:
            raise CredentialPluginError(f"{where}: command must be specified")
        api_version = section.get("apiVersion")
        if api_version not in API_VERSIONS:
            raise CredentialPluginError(
                f"{where}: apiVersion must be one of {', '.join(API_VERSIONS)}, got {api_version!r}"
            )
        mode = section.get("interactiveMode") or (
            "IfAvailable" if api_version.endswith("/v1beta1") else ""
        )
        if not mode:
            raise CredentialPluginError(f"{where}: interactiveMode must be specified for v1")
        if mode not in INTERACTIVE_MODES:
            raise CredentialPluginError(
                f"{where}: interactiveMode must be one of {', '.join(INTERACTIVE_MODES)}, "
                f"got {mode!r}"
            )
        args = section.get("args") or []
        if not isinstance(args, list):
            raise CredentialPluginError(f"{where}: args must be a list")
        env: list[tuple[str, str]] = []
        for item in section.get("env") or []:
            if not isinstance(item, Mapping) or not item.get("name"):
                raise CredentialPluginError(f"{where}: every env entry needs a name")
            env.append((str(item["name"]), str(item.get("value") or "")))
        return cls(
            user=user,
            command=command,
            args=tuple(str(arg) for arg in args),
            env=tuple(env),
            api_version=str(api_version),
            interactive_mode=str(mode),
            install_hint=str(section.get("installHint") or ""),
            cluster=cluster if section.get("provideClusterInfo") else None,
        )


def exec_cluster_info(
    cluster: Mapping[str, Any], ca_pem: bytes | None, extensions: Any
) -> dict[str, Any]:
    """Return the ``spec.cluster`` of an ExecCredential request for a kubeconfig cluster:
    server, TLS settings, proxy and the ``client.authentication.k8s.io/exec`` extension."""
    info: dict[str, Any] = {"server": str(cluster.get("server") or "")}
    if cluster.get("tls-server-name"):
        info["tls-server-name"] = str(cluster["tls-server-name"])
    if cluster.get("insecure-skip-tls-verify"):
        info["insecure-skip-tls-verify"] = True
    if ca_pem:
        info["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    if cluster.get("proxy-url"):
        info["proxy-url"] = str(cluster["proxy-url"])
    if cluster.get("disable-compression"):
        info["disable-compression"] = True
    for extension in extensions or []:
        if isinstance(extension, Mapping) and extension.get("name") == CLUSTER_CONFIG_EXTENSION:
            info["config"] = extension.get("extension")
    return info


class CredentialPlugin:
    """Runs one configured plugin and keeps its credential until it expires or is refused.

    Safe to share between threads: one thread runs the plugin while the others wait for its
    answer. ``now`` is the wall clock expirations are compared with.
    """

    def __init__(
        self,
        config: PluginConfig,
        *,
        now: Clock = lambda: datetime.datetime.now(datetime.UTC),
        timeout: float = PLUGIN_TIMEOUT_SECONDS,
    ) -> None:
        self._config = config
        self._now = now
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cached: PluginCredential | None = None
        self._where = f"exec credential plugin {config.command!r} of user {config.user!r}"

    def current(self) -> PluginCredential:
        """Return the kept credential, running the plugin first if there is none or it expired.

        Raises:
            CredentialPluginError: the plugin cannot run, fails, or prints no credential.
        """
        with self._lock:
            cached = self._cached
            if cached is None or cached.expired(self._now()):
                cached = self._cached = self._run()
            return cached

    def refresh(self, refused: PluginCredential) -> PluginCredential:
        """Run the plugin again after the API server refused ``refused`` (HTTP 401), unless
        another thread already did; return the credential now kept.

        Raises:
            CredentialPluginError: as :meth:`current`.
        """
        with self._lock:
            if self._cached is refused or self._cached is None:
                self._cached = self._run()
            return self._cached

    def _request(self) -> str:
        spec: dict[str, Any] = {"interactive": False}
        if self._config.cluster is not None:
            spec["cluster"] = dict(self._config.cluster)
        request = {"apiVersion": self._config.api_version, "kind": "ExecCredential", "spec": spec}
        return json.dumps(request, separators=(",", ":"))

    def _run(self) -> PluginCredential:
        config = self._config
        if config.interactive_mode == "Always":
            raise CredentialPluginError(
                f"{self._where}: it needs an interactive terminal (interactiveMode: Always), "
                "and edgepolicy runs plugins non-interactively; log in first or use a plugin "
                "mode that does not prompt"
            )
        executable = config.command if "/" in config.command else shutil.which(config.command)
        if executable is None or not os.access(executable, os.X_OK):
            hint = f"\n\n{config.install_hint}" if config.install_hint else ""
            raise CredentialPluginError(f"{self._where}: executable not found{hint}")
        env = {**os.environ, **dict(config.env), EXEC_INFO_ENV: self._request()}
        try:
            finished = subprocess.run(  # noqa: S603 - the command the kubeconfig names
                [executable, *config.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                env=env,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise CredentialPluginError(
                f"{self._where}: no answer within {self._timeout:g} seconds"
            ) from error
        except OSError as error:
            raise CredentialPluginError(f"{self._where}: cannot run it: {error}") from error
        if finished.returncode != 0:
            raise CredentialPluginError(f"{self._where}: exited with status {finished.returncode}")
        return parse_exec_credential(finished.stdout, config.api_version, self._where)


def parse_exec_credential(output: bytes, api_version: str, where: str) -> PluginCredential:
    """Read the ExecCredential a plugin printed.

    Raises:
        CredentialPluginError: the output is not an ExecCredential of ``api_version`` with a
            status holding a token or a certificate and key pair, or its expirationTimestamp is
            not an RFC 3339 time.
    """
    try:
        document = json.loads(output)
    except ValueError as error:
        raise CredentialPluginError(f"{where}: its output is not JSON") from error
    if not isinstance(document, Mapping) or document.get("kind") != "ExecCredential":
        raise CredentialPluginError(f"{where}: its output is not an ExecCredential")
    if document.get("apiVersion") != api_version:
        raise CredentialPluginError(
            f"{where}: configured for {api_version}, it returned {document.get('apiVersion')!r}"
        )
    status = document.get("status")
    if not isinstance(status, Mapping):
        raise CredentialPluginError(f"{where}: its ExecCredential has no status")
    token = str(status.get("token") or "") or None
    cert = str(status.get("clientCertificateData") or "")
    key = str(status.get("clientKeyData") or "")
    if token is None and not cert and not key:
        raise CredentialPluginError(f"{where}: it returned no token and no certificate and key")
    if bool(cert) != bool(key):
        raise CredentialPluginError(
            f"{where}: it returned a client certificate or key without the other"
        )
    return PluginCredential(
        token=token,
        cert_pem=cert.encode() if cert else None,
        key_pem=key.encode() if key else None,
        expires_at=_timestamp(status.get("expirationTimestamp"), where),
    )


def _timestamp(value: Any, where: str) -> datetime.datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(value))
    except ValueError as error:
        raise CredentialPluginError(
            f"{where}: expirationTimestamp {value!r} is not an RFC 3339 time"
        ) from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)
