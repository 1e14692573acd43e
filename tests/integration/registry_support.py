"""A real OCI registry (CNCF distribution, ``.tools/bin/registry``) on loopback, for the tests.

:class:`Registry` runs ``registry serve`` with filesystem storage in a temporary directory,
anonymous or behind Docker token authentication. :class:`TokenService` is the token service of
the latter: it checks a user and password (HTTP Basic) and issues ES256 JWTs the registry
verifies against its JWKS file, granting what the request's scope asks for.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import urllib3
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_BIN = ROOT / ".tools" / "bin" / "registry"
SERVICE = "edgepolicy-test-registry"
ISSUER = "edgepolicy-test-token-service"
KEY_ID = "test-token-key"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _TokenHandler(BaseHTTPRequestHandler):
    """``GET /token?service=&scope=``: a JWT for the scope when the Basic credentials match."""

    server: _TokenServer

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        query = parse_qs(urlsplit(self.path).query)
        self.server.owner.requests.append(
            {"scope": query.get("scope", [""])[0], "service": query.get("service", [""])[0],
             "authorized": self.headers.get("Authorization") is not None}
        )  # fmt: skip
        expected = "Basic " + base64.b64encode(
            f"{self.server.owner.username}:{self.server.owner.password}".encode()
        ).decode("ascii")
        if self.headers.get("Authorization") != expected:
            self._answer(401, {"details": "wrong user or password"})
            return
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        self._answer(200, {"token": self.server.owner.token(access), "expires_in": 300})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        """The OAuth2 refresh-token grant (a Docker ``identitytoken``), form-encoded."""
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        owner = self.server.owner
        owner.requests.append({"scope": form.get("scope", ""), "grant": form.get("grant_type")})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != owner.refresh:
            self._answer(401, {"details": "invalid refresh token"})
            return
        kind, _, rest = form.get("scope", "").partition(":")
        name, _, actions = rest.rpartition(":")
        access = [{"type": kind, "name": name, "actions": actions.split(",")}]
        self._answer(200, {"access_token": owner.token(access), "expires_in": 300})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class _TokenServer(ThreadingHTTPServer):
    owner: ClassVar[TokenService]


class TokenService:
    """A Docker token service on loopback issuing ES256 tokens to one user."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.refresh = secrets.token_hex(16)  # the identity token `docker login` would store
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.requests: list[dict[str, Any]] = []
        server_class = type("Server", (_TokenServer,), {"owner": self})
        self._server = server_class(("127.0.0.1", 0), _TokenHandler)
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> TokenService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{
            "kty": "EC", "crv": "P-256", "kid": KEY_ID, "alg": "ES256", "use": "sig",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }]}  # fmt: skip

    def token(self, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": KEY_ID}
        claims = {
            "iss": ISSUER, "sub": self.username, "aud": SERVICE, "iat": now, "nbf": now - 5,
            "exp": now + 300, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class Registry:
    """``registry serve`` on 127.0.0.1 with filesystem storage (optionally token auth)."""

    def __init__(
        self,
        workdir: Path,
        tokens: TokenService | None = None,
        *,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """``tls`` is (certificate, key, CA certificate) to serve HTTPS with."""
        self.workdir = workdir
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self._ca_file = str(tls[2]) if tls else None
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }  # fmt: skip
        if tls is not None:
            config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        if tokens is not None:
            jwks = workdir / "jwks.json"
            jwks.write_text(json.dumps(tokens.jwks()), encoding="utf-8")
            config["auth"] = {"token": {
                "realm": tokens.realm, "service": SERVICE, "issuer": ISSUER, "jwks": str(jwks),
            }}  # fmt: skip
        self.config_file = workdir / "registry.yaml"
        self._config = config
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Registry:
        """Start the registry and wait until ``/v2/`` answers."""
        if not REGISTRY_BIN.exists():
            raise RuntimeError(f"missing {REGISTRY_BIN}: run `scripts/install-tools.sh registry`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self._config), encoding="utf-8")
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "GOMAXPROCS": "1"}
        with open(self.workdir / "registry.log", "ab") as log:
            self._process = subprocess.Popen(
                [str(REGISTRY_BIN), "serve", str(self.config_file)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"registry exited: {self.log()[-2000:]}")
            try:
                probe = urllib3.PoolManager(ca_certs=self._ca_file, retries=False, timeout=1.0)
                probe.request("GET", f"{self.url}/v2/")
                return self
            except urllib3.exceptions.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"registry did not answer on {self.url}: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self.workdir / "registry.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
