"""A local Kubernetes control plane for tests and `make run`: etcd + kube-apiserver on loopback.

Envtest-style: no nodes, no controller-manager, no scheduler. Objects are stored and admission
webhooks are called, which is all edgepolicy needs. Everything lives under one state directory
(default ``.run/``):

    DIR/kubeconfig                       admin kubeconfig (client certificate in system:masters)
    DIR/controlplane/state.json          ports, process ids, URLs
    DIR/controlplane/pki/                CA, serving and client certificates, service-account keys
    DIR/controlplane/etcd-data/          etcd's data (wiped on every fresh start)
    DIR/controlplane/etcd.log            etcd's output
    DIR/controlplane/kube-apiserver.log  kube-apiserver's output

Usage (through ``scripts/controlplane.sh``, which runs this with the project's venv):

    controlplane.sh [--dir DIR] [--bin-dir DIR] start [--timeout SECONDS]
    controlplane.sh [--dir DIR] stop
    controlplane.sh [--dir DIR] status
    controlplane.sh [--dir DIR] env        # prints `export KUBECONFIG=...`
    controlplane.sh webhook-certs --out DIR
    controlplane.sh webhook-config --url URL --ca-file FILE [--failure-policy Fail|Ignore]

The last two serve a webhook running on loopback (tests, ``make run``): ``webhook-certs`` writes
a CA and a serving certificate for 127.0.0.1; ``webhook-config`` prints deploy/base's webhook
configurations with a URL clientConfig and that CA as caBundle, for ``kubectl apply -f -``.

``start`` and ``stop`` are idempotent: starting a running plane reports it and changes nothing;
stopping a stopped plane does nothing. Binaries are looked up in ``--bin-dir`` (default
``.tools/bin``, filled by ``scripts/install-tools.sh k8s etcd``), then ``$KUBEBUILDER_ASSETS``,
then ``PATH``. Exit codes: 0 success (``status``: running and ready), 1 not running or failed,
2 bad usage. Only processes this script started (recorded in state.json and checked against
their command line) are ever signalled.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".run"
DEFAULT_BIN_DIR = ROOT / ".tools" / "bin"
WEBHOOK_CONFIGURATIONS = ROOT / "deploy" / "base" / "webhooks.yaml"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
START_ATTEMPTS = 3
PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


class ControlPlaneError(Exception):
    """The control plane could not be started, inspected or stopped; the message says why."""


class PortTakenError(ControlPlaneError):
    """A port picked for etcd or kube-apiserver was taken by another process before use."""


# --- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """A PEM-encoded private key and certificate."""

    key_pem: bytes
    cert_pem: bytes


def new_ca(common_name: str) -> KeyPair:
    """Return a fresh self-signed CA (ECDSA P-256, valid for 10 days)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue_cert(
    ca: KeyPair,
    common_name: str,
    *,
    organization: str | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    server: bool = True,
    client: bool = False,
) -> KeyPair:
    """Return a leaf certificate signed by ``ca`` for the given names and usages."""
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ControlPlaneError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only."""
    path.write_bytes(b"")
    path.chmod(0o600)
    path.write_bytes(data)


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    The sockets are held open together while picking, so the ports differ from each other.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def find_binary(name: str, bin_dir: Path) -> Path:
    """Locate ``name`` in ``bin_dir``, ``$KUBEBUILDER_ASSETS`` or PATH; raise if it is nowhere."""
    candidates = [bin_dir / name]
    if os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.append(Path(os.environ["KUBEBUILDER_ASSETS"]) / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise ControlPlaneError(
        f"{name} not found in {bin_dir}, $KUBEBUILDER_ASSETS or PATH; "
        "build it with `scripts/install-tools.sh k8s etcd`"
    )


def _child_env() -> dict[str, str]:
    """Return the environment for etcd and kube-apiserver: no proxies, webhooks stay on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _spawn(argv: Sequence[str], log_path: Path) -> int:
    """Start ``argv`` in its own session with output to ``log_path``; return its pid."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv built by this script
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            start_new_session=True,
        )
    return process.pid


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _is_ours(pid: int, marker: str) -> bool:
    """True if ``pid`` is alive and its command line carries ``marker`` (our state directory)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    status = Path(f"/proc/{pid}/stat")
    if status.exists() and status.read_text().split(") ", 1)[-1].startswith("Z"):
        return False
    return marker in _cmdline(pid)


def _terminate(pid: int, marker: str, *, grace: float = 5.0) -> None:
    """Send SIGTERM to our process ``pid``, then SIGKILL if it outlives ``grace`` seconds."""
    if not _is_ours(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _is_ours(pid, marker):
            return
        time.sleep(0.1)
    if _is_ours(pid, marker):
        os.kill(pid, signal.SIGKILL)


# --- the control plane --------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """What a running control plane looks like; stored as state.json."""

    etcd_pid: int
    apiserver_pid: int
    etcd_url: str
    server: str
    kubeconfig: str


class ControlPlane:
    """etcd + kube-apiserver under one state directory."""

    def __init__(self, run_dir: Path, bin_dir: Path = DEFAULT_BIN_DIR) -> None:
        self.run_dir = run_dir.resolve()
        self.bin_dir = bin_dir
        self.home = self.run_dir / "controlplane"
        self.pki = self.home / "pki"
        self.kubeconfig = self.run_dir / "kubeconfig"
        self.state_file = self.home / "state.json"

    # state ----------------------------------------------------------------------------------

    def state(self) -> State | None:
        """Return the recorded state, or None if nothing was started here."""
        try:
            return State(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _marker(self) -> str:
        return str(self.home)

    def processes_alive(self, state: State) -> tuple[bool, bool]:
        """Return whether (etcd, kube-apiserver) recorded in ``state`` are still running."""
        return _is_ours(state.etcd_pid, self._marker()), _is_ours(
            state.apiserver_pid, self._marker()
        )

    def is_ready(self, state: State, *, timeout: float = 2.0) -> bool:
        """True if the API server answers ``/readyz`` with ``ok`` using the admin credentials."""
        try:
            context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
            opener = urllib.request.build_opener(
                urllib.request.HTTPSHandler(context=context), urllib.request.ProxyHandler({})
            )
            with opener.open(f"{state.server}/readyz", timeout=timeout) as response:
                return bool(response.status == 200 and response.read().strip() == b"ok")
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    # start ----------------------------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> State:
        """Start etcd and kube-apiserver unless they already run; wait for ``/readyz``.

        Ports are picked free just before use; if another process takes one in between, the
        start is retried on new ports (up to three times).

        Raises ControlPlaneError (with the tail of the failing process's log) if a binary is
        missing or the API server is not ready within ``timeout`` seconds.
        """
        current = self.state()
        if current is not None and all(self.processes_alive(current)) and self.is_ready(current):
            return current
        etcd_bin = find_binary("etcd", self.bin_dir)
        apiserver_bin = find_binary("kube-apiserver", self.bin_dir)
        attempt = 1
        while True:
            try:
                return self._start_once(etcd_bin, apiserver_bin, timeout)
            except PortTakenError:
                if attempt == START_ATTEMPTS:
                    raise
                attempt += 1

    def _start_once(self, etcd_bin: Path, apiserver_bin: Path, timeout: float) -> State:
        self.stop()
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        self._write_pki()
        data_dir = self.home / "etcd-data"
        shutil.rmtree(data_dir, ignore_errors=True)
        for log in ("etcd.log", "kube-apiserver.log"):
            (self.home / log).unlink(missing_ok=True)

        etcd_port, peer_port, api_port = free_ports(3)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd_pid = _spawn(
            [
                str(etcd_bin),
                "--name=edgepolicy",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=edgepolicy={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.home / "etcd.log",
        )
        server = f"https://127.0.0.1:{api_port}"
        state = State(
            etcd_pid=etcd_pid,
            apiserver_pid=0,
            etcd_url=etcd_url,
            server=server,
            kubeconfig=str(self.kubeconfig),
        )
        self._save(state)
        apiserver_pid = _spawn(
            self._apiserver_args(apiserver_bin, etcd_url, api_port),
            self.home / "kube-apiserver.log",
        )
        state = State(**{**asdict(state), "apiserver_pid": apiserver_pid})
        self._save(state)
        self._write_kubeconfig(server)
        self._wait_ready(state, timeout)
        return state

    def _apiserver_args(self, binary: Path, etcd_url: str, port: int) -> list[str]:
        pki = self.pki
        return [
            str(binary),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            "--tls-min-version=VersionTLS12",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No controller-manager creates `default` service accounts, so Pods would be refused.
            "--disable-admission-plugins=ServiceAccount",
            # A loopback advertise address cannot be published as the `kubernetes` endpoint.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
        ]

    def _write_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca = new_ca("edgepolicy-controlplane-ca")
        serving = issue_cert(
            ca,
            "kube-apiserver",
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ip_addresses=["127.0.0.1", "10.0.0.1"],
        )
        admin = issue_cert(
            ca, "edgepolicy-admin", organization="system:masters", server=False, client=True
        )
        sa_key = ec.generate_private_key(ec.SECP256R1())
        (self.pki / "ca.crt").write_bytes(ca.cert_pem)
        _write_private(self.pki / "ca.key", ca.key_pem)
        (self.pki / "apiserver.crt").write_bytes(serving.cert_pem)
        _write_private(self.pki / "apiserver.key", serving.key_pem)
        (self.pki / "admin.crt").write_bytes(admin.cert_pem)
        _write_private(self.pki / "admin.key", admin.key_pem)
        _write_private(self.pki / "sa.key", _key_pem(sa_key))
        (self.pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _write_kubeconfig(self, server: str) -> None:
        def b64(name: str) -> str:
            return base64.b64encode((self.pki / name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "edgepolicy-local",
                    "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "edgepolicy-admin",
                    "user": {
                        "client-certificate-data": b64("admin.crt"),
                        "client-key-data": b64("admin.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "edgepolicy-local",
                    "context": {"cluster": "edgepolicy-local", "user": "edgepolicy-admin"},
                }
            ],
            "current-context": "edgepolicy-local",
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _write_private(self.kubeconfig, json.dumps(config, indent=2).encode())

    def _save(self, state: State) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

    def _wait_ready(self, state: State, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            etcd_alive, apiserver_alive = self.processes_alive(state)
            if not etcd_alive or not apiserver_alive:
                which = "etcd" if not etcd_alive else "kube-apiserver"
                self.stop()
                tail = self._tail(which)
                error = PortTakenError if "address already in use" in tail else ControlPlaneError
                raise error(f"{which} exited during start-up:\n{tail}")
            if self.is_ready(state):
                return
            time.sleep(0.25)
        self.stop()
        raise ControlPlaneError(
            f"kube-apiserver was not ready within {timeout:.0f}s:\n{self._tail('kube-apiserver')}"
        )

    def _tail(self, process: str, lines: int = 15) -> str:
        try:
            text = (self.home / f"{process}.log").read_text(errors="replace")
        except OSError:
            return f"(no {process}.log)"
        return "\n".join(text.splitlines()[-lines:])

    # stop -----------------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the recorded processes (API server first); return True if any was running."""
        state = self.state()
        if state is None:
            return False
        etcd_alive, apiserver_alive = self.processes_alive(state)
        _terminate(state.apiserver_pid, self._marker())
        _terminate(state.etcd_pid, self._marker())
        self.state_file.unlink(missing_ok=True)
        return etcd_alive or apiserver_alive


# --- a webhook on loopback -----------------------------------------------------------------------


def write_webhook_certs(directory: Path, *, ip_address: str = "127.0.0.1") -> KeyPair:
    """Write a fresh CA (ca.crt) and a serving pair for ``ip_address`` (tls.crt, tls.key).

    Returns the CA; its certificate is the caBundle the API server needs to trust the webhook.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca("edgepolicy-local-webhook-ca")
    serving = issue_cert(
        ca, "edgepolicy-webhook", dns_names=["localhost"], ip_addresses=[ip_address]
    )
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    (directory / "tls.crt").write_bytes(serving.cert_pem)
    _write_private(directory / "tls.key", serving.key_pem)
    return ca


def webhook_configurations(
    url: str, ca_pem: bytes, *, failure_policy: str = "Fail"
) -> list[dict[str, Any]]:
    """The shipped webhook configurations (deploy/base/webhooks.yaml) pointed at ``url``.

    Only ``clientConfig`` changes (a URL with ``ca_pem`` as caBundle instead of the in-cluster
    Service) and ``failurePolicy``; rules, namespaceSelector and timeouts stay as shipped.
    """
    if failure_policy not in ("Fail", "Ignore"):
        raise ControlPlaneError(f"failurePolicy must be Fail or Ignore, got {failure_policy!r}")
    documents = yaml.safe_load_all(WEBHOOK_CONFIGURATIONS.read_text())
    configurations = [doc for doc in documents if doc]
    ca_bundle = base64.b64encode(ca_pem).decode()
    for configuration in configurations:
        for hook in configuration["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"{url.rstrip('/')}{path}", "caBundle": ca_bundle}
            hook["failurePolicy"] = failure_policy
    return configurations


# --- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="controlplane.sh",
        description="Start, stop and inspect a local etcd + kube-apiserver on 127.0.0.1.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="state directory (default: .run); the kubeconfig is DIR/kubeconfig",
    )
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=DEFAULT_BIN_DIR,
        help="where etcd and kube-apiserver are (default: .tools/bin)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = commands.add_parser("start", help="start (or keep) the control plane")
    start.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for /readyz (default: 90)"
    )
    commands.add_parser("stop", help="stop the control plane")
    commands.add_parser("status", help="exit 0 if running and ready, 1 otherwise")
    commands.add_parser("env", help="print `export KUBECONFIG=...` for a shell")
    certs = commands.add_parser(
        "webhook-certs", help="write ca.crt, tls.crt, tls.key for a webhook on 127.0.0.1"
    )
    certs.add_argument("--out", type=Path, required=True, help="directory to write them to")
    config = commands.add_parser(
        "webhook-config",
        help="print deploy/base's webhook configurations pointed at URL (for kubectl apply -f -)",
    )
    config.add_argument(
        "--url", required=True, help="the webhook's base URL, https://127.0.0.1:PORT"
    )
    config.add_argument("--ca-file", type=Path, required=True, help="PEM CA that signed its cert")
    config.add_argument("--failure-policy", choices=["Fail", "Ignore"], default="Fail")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit code."""
    args = _parser().parse_args(argv)
    plane = ControlPlane(args.dir, args.bin_dir)
    try:
        if args.command == "start":
            before = plane.state()
            state = plane.start(timeout=args.timeout)
            verb = "already running" if before == state else "started"
            print(f"control plane {verb}: {state.server} (KUBECONFIG={state.kubeconfig})")
        elif args.command == "stop":
            print("control plane stopped" if plane.stop() else "control plane not running")
        elif args.command == "status":
            recorded = plane.state()
            if recorded is None:
                print("control plane not running")
                return 1
            etcd_alive, apiserver_alive = plane.processes_alive(recorded)
            ready = etcd_alive and apiserver_alive and plane.is_ready(recorded)
            print(
                f"etcd: {'running' if etcd_alive else 'stopped'} ({recorded.etcd_url}), "
                f"kube-apiserver: {'ready' if ready else 'not ready'} ({recorded.server}), "
                f"KUBECONFIG={recorded.kubeconfig}"
            )
            return 0 if ready else 1
        elif args.command == "webhook-certs":
            write_webhook_certs(args.out)
            print(f"wrote {args.out}/ca.crt, tls.crt, tls.key")
        elif args.command == "webhook-config":
            try:
                ca_pem = args.ca_file.read_bytes()
            except OSError as error:
                raise ControlPlaneError(
                    f"--ca-file: cannot read {args.ca_file}: {error}"
                ) from error
            items = webhook_configurations(args.url, ca_pem, failure_policy=args.failure_policy)
            print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        else:
            print(f"export KUBECONFIG={plane.kubeconfig}")
    except ControlPlaneError as error:
        print(f"controlplane: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
