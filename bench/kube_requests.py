"""Measure the cost of one Kubernetes API request through ``edgepolicy.kube`` against the
client of another Git revision (default ``main``), in the same process, against the same local
TLS server: the webhook's lookups take this path on every admission that needs context.

Not a test: it prints numbers (docs/deploy.md, "Cluster credentials").

    .venv/bin/python bench/kube_requests.py [--baseline main] [--requests 300] [--rounds 15]

Both clients use a bearer token from a kubeconfig; the current one is also measured with an exec
credential plugin (tests/assets/fake_credential_plugin.py, run once: the credential is kept).
Rounds alternate between the clients (each goes first in turn); the median per-request CPU time
of each is printed with its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgepolicy import kube  # noqa: E402

TOKEN = "bench-token"
PATH = "/apis/policy.apexlogic.com/v1alpha1/namespaces/ai/finopspolicies"
BODY = json.dumps({"items": []}).encode()
PLUGIN = ROOT / "tests" / "assets" / "fake_credential_plugin.py"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API server
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _server(directory: Path) -> tuple[ThreadingHTTPServer, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "api.crt", directory / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cert_file


def _kubeconfig(path: Path, server: str, ca: Path, user: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "bench",
                "contexts": [{"name": "bench", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": server,
                            "certificate-authority-data": base64.b64encode(
                                ca.read_bytes()
                            ).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def _baseline_module(revision: str) -> types.ModuleType:
    """``edgepolicy/kube.py`` as it is at ``revision``, as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:edgepolicy/kube.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("edgepolicy_kube_baseline")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:edgepolicy/kube.py", "exec"), module.__dict__)  # noqa: S102
    return module


def _per_request(client: Any, requests: int) -> float:
    """CPU seconds of this process (client and server threads) per request: steadier than wall
    time on a shared machine, and the same server work for every client."""
    started = time.process_time()
    for _ in range(requests):
        client.get_object(PATH, timeout=5)
    return (time.process_time() - started) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="Git revision to compare with")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        server, ca = _server(directory)
        url = f"https://127.0.0.1:{server.server_address[1]}"
        token_config = _kubeconfig(directory / "token", url, ca, {"token": TOKEN})
        (directory / "state").mkdir()
        (directory / "state" / "answers.json").write_text(
            json.dumps(
                [
                    {
                        "output": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "kind": "ExecCredential",
                            "status": {"token": TOKEN},
                        }
                    }
                ]
            )
        )
        exec_user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(PLUGIN),
                "interactiveMode": "Never",
                "env": [{"name": "PLUGIN_STATE", "value": str(directory / "state")}],
            }
        }
        exec_config = _kubeconfig(directory / "exec", url, ca, exec_user)
        clients = {
            f"{args.baseline} (token)": _baseline_module(args.baseline).from_kubeconfig(
                token_config
            ),
            "current (token)": kube.from_kubeconfig(token_config),
            "current (exec plugin)": kube.from_kubeconfig(exec_config),
        }
        times: dict[str, list[float]] = {name: [] for name in clients}
        for client in clients.values():
            _per_request(client, 50)  # connect, run the plugin once
        names = list(clients)
        for round_number in range(args.rounds):
            shift = round_number % len(names)  # each client goes first as often as the others
            for name in names[shift:] + names[:shift]:
                times[name].append(_per_request(clients[name], args.requests))
        server.shutdown()
        plugin_runs = len(list((directory / "state").glob("call-*.json")))
    baseline = statistics.median(times[f"{args.baseline} (token)"])
    print(f"{'client':<24} {'CPU µs/request':>15} {'x baseline':>11}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} {median * 1e6:>15.1f} {median / baseline:>11.2f}")
    print(f"exec plugin runs: {plugin_runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
