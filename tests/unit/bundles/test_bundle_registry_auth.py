"""Registry credentials: challenges, the Docker configuration and credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from edgepolicy.bundles.registry_auth import (
    ANONYMOUS,
    RegistryCredentials,
    basic_header,
    check_realm,
    from_docker_config,
    parse_challenge,
    resolve_credentials,
    token_from_answer,
)

from edgepolicy.errors import RegistryError, UsageError


def test_a_bearer_challenge_gives_realm_service_and_scope() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:edge/policy:pull,push"'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:edge/policy:pull,push",
    }


def test_basic_and_unquoted_and_escaped_challenges() -> None:
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert basic.params["realm"] == "Registry Realm"
    odd = parse_challenge('Bearer realm=https://a/token, service="say \\"hi\\""')
    assert odd is not None
    assert odd.params == {"realm": "https://a/token", "service": 'say "hi"'}
    assert parse_challenge("") is None
    assert parse_challenge("realm=x") is None


def _config(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def test_auths_entries_as_docker_login_writes_them(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"ci:pa:ss").decode()
    path = _config(
        tmp_path,
        {
            "auths": {
                "registry.example.com:5000": {"auth": encoded},
                "https://other.example.com": {"username": "u", "password": "p"},
                "tokens.example.com": {"auth": base64.b64encode(b"<token>:").decode(),
                                       "identitytoken": "refresh-me"},
                "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
            }
        },
    )  # fmt: skip
    found = from_docker_config("registry.example.com:5000", path)
    assert (found.username, found.password, found.identity_token) == ("ci", "pa:ss", None)
    assert found.origin == f"{path} auths['registry.example.com:5000']"
    assert from_docker_config("other.example.com", path).password == "p"
    token = from_docker_config("tokens.example.com", path)
    assert token.identity_token == "refresh-me" and not token.has_password
    assert from_docker_config("docker.io", path).username == "hub"
    assert from_docker_config("unknown.example.com", path) == ANONYMOUS


def test_missing_and_broken_configurations(tmp_path: Path) -> None:
    assert from_docker_config("r.example.com", tmp_path / "absent.json") == ANONYMOUS
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(UsageError, match="broken.json: not JSON"):
        from_docker_config("r.example.com", broken)
    bad_auth = _config(tmp_path, {"auths": {"r.example.com": {"auth": "bm9jb2xvbg=="}}})
    with pytest.raises(UsageError, match=r"auths\['r.example.com'\].auth: not base64 of user"):
        from_docker_config("r.example.com", bad_auth)


def _helper(directory: Path, name: str, script: str) -> None:
    path = directory / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_credential_helpers_are_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _helper(
        bin_dir, "fake", 'read server; echo "{\\"Username\\":\\"u-$server\\",\\"Secret\\":\\"s\\"}"'
    )
    _helper(bin_dir, "none", "echo 'credentials not found in native keychain'; exit 1")
    _helper(bin_dir, "token", 'echo \'{"Username":"<token>","Secret":"refresh"}\'')
    path = _config(
        tmp_path,
        {"credHelpers": {"r.example.com": "fake", "t.example.com": "token",
                         "gone.example.com": "x"},
         "credsStore": "none"},
    )  # fmt: skip
    found = from_docker_config("r.example.com", path)
    assert (found.username, found.password) == ("u-r.example.com", "s")
    assert from_docker_config("t.example.com", path).identity_token == "refresh"
    assert from_docker_config("elsewhere.example.com", path) == ANONYMOUS
    with pytest.raises(UsageError, match="credential helper docker-credential-x is not installed"):
        from_docker_config("gone.example.com", path)


def test_explicit_credentials_win_and_must_be_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    _config(tmp_path, {"auths": {"r.example.com": {"username": "docker", "password": "d"}}})
    assert resolve_credentials("r.example.com", None, None).username == "docker"
    given = resolve_credentials("r.example.com", "ci", "secret")
    assert (given.username, given.password, given.origin) == ("ci", "secret", "the command line")
    with pytest.raises(UsageError, match="a user name needs a password"):
        resolve_credentials("r.example.com", "ci", None)


def test_secrets_stay_out_of_reprs_and_headers_are_basic() -> None:
    credentials = RegistryCredentials("ci", "hunter2", "refresh-me")
    assert "hunter2" not in repr(credentials) and "refresh-me" not in repr(credentials)
    assert (
        basic_header(RegistryCredentials("ci", "hunter2"))
        == "Basic " + base64.b64encode(b"ci:hunter2").decode()
    )


def test_token_answers() -> None:
    assert token_from_answer(b'{"token":"a","access_token":"b"}', "realm") == "a"
    assert token_from_answer(b'{"access_token":"b"}', "realm") == "b"
    with pytest.raises(RegistryError, match="token service realm: answer holds no token"):
        token_from_answer(b'{"expires_in":3}', "realm")
    with pytest.raises(RegistryError, match="answer is not JSON"):
        token_from_answer(b"<html>", "realm")


def test_credentials_go_to_an_https_realm_only_unless_the_registry_is_plain_http() -> None:
    check_realm("https://auth.example.com/token", plain_http=False)
    check_realm("http://127.0.0.1:5001/token", plain_http=True)
    for realm in ("http://auth.example.com/token", "file:///etc/passwd", "", "https:///x"):
        with pytest.raises(RegistryError, match="refusing to send credentials there"):
            check_realm(realm, plain_http=False)
