"""Exec credential plugins, run for real (tests/assets/fake_credential_plugin.py) as client-go
runs them: request, interactive modes, answers, caching until expiry, renewal after a 401."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest
from plugin_support import FakePlugin

from edgepolicy.credential_plugin import (
    CredentialPlugin,
    CredentialPluginError,
    PluginConfig,
    exec_cluster_info,
)

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
SECRET = "s3cret-token-never-shown"
NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def _credential(status: dict[str, Any], api_version: str = V1) -> dict[str, Any]:
    return {"output": {"apiVersion": api_version, "kind": "ExecCredential", "status": status}}


def _plugin(
    fake: FakePlugin,
    *,
    cluster: dict[str, Any] | None = None,
    clock: list[datetime.datetime] | None = None,
    **fields: Any,
) -> CredentialPlugin:
    config = PluginConfig.parse("alice", fake.exec_section(**fields), cluster)
    moments = clock if clock is not None else [NOW]
    return CredentialPlugin(config, now=lambda: moments[0])


def test_a_token_is_returned_with_the_request_in_the_environment(fake_plugin: FakePlugin) -> None:
    fake_plugin.answer(_credential({"token": SECRET}))
    plugin = _plugin(
        fake_plugin,
        args=["get-token", "--cluster", "edge"],
        env=[
            {"name": "PLUGIN_STATE", "value": str(fake_plugin.state)},
            {"name": "PLUGIN_MARK", "value": "from-kubeconfig"},
        ],
    )
    credential = plugin.current()
    assert (credential.token, credential.cert_pem, credential.expires_at) == (SECRET, None, None)
    [call] = fake_plugin.calls()
    assert call["argv"] == ["get-token", "--cluster", "edge"]
    assert call["mark"] == "from-kubeconfig"
    assert call["stdin_is_tty"] is False
    assert json.loads(call["exec_info"]) == {
        "apiVersion": V1,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }


def test_provide_cluster_info_hands_the_cluster_to_the_plugin(fake_plugin: FakePlugin) -> None:
    fake_plugin.answer(_credential({"token": SECRET}))
    cluster = exec_cluster_info(
        {
            "server": "https://edge.example:6443",
            "tls-server-name": "api.edge.internal",
            "proxy-url": "http://proxy.example:3128",
        },
        b"-----CA-----",
        [{"name": "client.authentication.k8s.io/exec", "extension": {"audience": "edge"}}],
    )
    _plugin(fake_plugin, cluster=cluster, provideClusterInfo=True).current()
    _plugin(fake_plugin, cluster=cluster, provideClusterInfo=False).current()
    with_info, without_info = (json.loads(c["exec_info"]) for c in fake_plugin.calls())
    assert with_info["spec"]["cluster"] == {
        "server": "https://edge.example:6443",
        "tls-server-name": "api.edge.internal",
        "certificate-authority-data": base64.b64encode(b"-----CA-----").decode(),
        "proxy-url": "http://proxy.example:3128",
        "config": {"audience": "edge"},
    }
    assert "cluster" not in without_info["spec"]


def test_the_credential_is_kept_until_it_expires(fake_plugin: FakePlugin) -> None:
    expiry = NOW + datetime.timedelta(minutes=10)
    fake_plugin.answer(
        _credential({"token": "first", "expirationTimestamp": "2026-12-06T12:10:00Z"}),
        _credential({"token": "second"}),
    )
    clock = [NOW]
    plugin = _plugin(fake_plugin, clock=clock)
    assert plugin.current().expires_at == expiry
    clock[0] = expiry  # not yet past
    assert plugin.current().token == "first"
    assert len(fake_plugin.calls()) == 1
    clock[0] = expiry + datetime.timedelta(seconds=1)
    assert plugin.current().token == "second"
    clock[0] = expiry + datetime.timedelta(days=365)  # no expiry: kept for ever
    assert plugin.current().token == "second"
    assert len(fake_plugin.calls()) == 2


def test_a_refused_credential_is_renewed_once(fake_plugin: FakePlugin) -> None:
    fake_plugin.answer(_credential({"token": "stale"}), _credential({"token": "fresh"}))
    plugin = _plugin(fake_plugin)
    stale = plugin.current()
    fresh = plugin.refresh(stale)
    assert fresh.token == "fresh"
    # Another thread's 401 for the same stale credential does not run the plugin again.
    assert plugin.refresh(stale) is fresh
    assert len(fake_plugin.calls()) == 2


def test_a_client_certificate_and_key_are_returned(fake_plugin: FakePlugin) -> None:
    fake_plugin.answer(
        _credential({"clientCertificateData": "CERT PEM", "clientKeyData": "KEY PEM"}, V1BETA1)
    )
    credential = _plugin(fake_plugin, apiVersion=V1BETA1).current()
    assert (credential.token, credential.cert_pem, credential.key_pem) == (
        None,
        b"CERT PEM",
        b"KEY PEM",
    )


@pytest.mark.parametrize("mode", ["Never", "IfAvailable"])
def test_non_interactive_modes_run_without_a_terminal(fake_plugin: FakePlugin, mode: str) -> None:
    fake_plugin.answer(_credential({"token": SECRET}))
    assert _plugin(fake_plugin, interactiveMode=mode).current().token == SECRET
    assert fake_plugin.calls()[0]["stdin_is_tty"] is False
    assert json.loads(fake_plugin.calls()[0]["exec_info"])["spec"]["interactive"] is False


def test_interactive_mode_always_is_refused_without_running(fake_plugin: FakePlugin) -> None:
    fake_plugin.answer(_credential({"token": SECRET}))
    with pytest.raises(CredentialPluginError, match="needs an interactive terminal"):
        _plugin(fake_plugin, interactiveMode="Always").current()
    assert fake_plugin.calls() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"command": ""}, "user 'alice'.*command must be specified"),
        ({"apiVersion": "client.authentication.k8s.io/v1alpha1"}, "apiVersion must be one of"),
        ({"interactiveMode": None}, "interactiveMode must be specified for v1"),
        ({"interactiveMode": "Sometimes"}, "interactiveMode must be one of .*'Sometimes'"),
        ({"env": [{"value": "x"}]}, "every env entry needs a name"),
        ({"args": "--one"}, "args must be a list"),
    ],
)
def test_malformed_exec_sections_are_refused(
    fake_plugin: FakePlugin, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(CredentialPluginError, match=message):
        PluginConfig.parse("alice", fake_plugin.exec_section(**fields), None)


def test_v1beta1_defaults_to_if_available(fake_plugin: FakePlugin) -> None:
    section = fake_plugin.exec_section(apiVersion=V1BETA1)
    del section["interactiveMode"]
    assert PluginConfig.parse("alice", section, None).interactive_mode == "IfAvailable"


def test_a_missing_executable_shows_the_install_hint(fake_plugin: FakePlugin) -> None:
    plugin = _plugin(
        fake_plugin,
        command="edgepolicy-no-such-plugin",
        installHint="Install it with: pip install edgepolicy-no-such-plugin",
    )
    with pytest.raises(CredentialPluginError) as raised:
        plugin.current()
    assert "'edgepolicy-no-such-plugin' of user 'alice': executable not found" in str(raised.value)
    assert "Install it with: pip install" in str(raised.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"exit": 3}, "exited with status 3"),
        ({"raw": f"token: {SECRET}"}, "its output is not JSON"),
        ({"output": {"apiVersion": V1, "kind": "Secret"}}, "not an ExecCredential"),
        (_credential({"token": SECRET}, V1BETA1), f"configured for {V1}, it returned '{V1BETA1}'"),
        ({"output": {"apiVersion": V1, "kind": "ExecCredential"}}, "has no status"),
        (_credential({}), "no token and no certificate and key"),
        (_credential({"clientCertificateData": "CERT"}), "certificate or key without the other"),
        (
            _credential({"token": SECRET, "expirationTimestamp": "tomorrow"}),
            "expirationTimestamp 'tomorrow' is not an RFC 3339 time",
        ),
    ],
)
def test_bad_answers_are_errors_without_the_secret(
    fake_plugin: FakePlugin, answer: dict[str, Any], message: str
) -> None:
    fake_plugin.answer(answer)
    with pytest.raises(CredentialPluginError, match=message) as raised:
        _plugin(fake_plugin).current()
    assert SECRET not in str(raised.value)
