"""End-to-end test helpers: `kubectl`, the webhook process, webhook configurations, objects.

Everything here drives real processes: the pinned `kubectl` against the test control plane and
`edgepolicy serve` over TLS. The fixtures that start them live in conftest.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".tools" / "bin"
ASSETS = Path(__file__).resolve().parent / "assets"
EDGEPOLICY = Path(sys.executable).parent / "edgepolicy"
SEED_POLICY = ASSETS / "seed-finopspolicy.yaml"
SEED_LABELS = {"app": "ai-inference-service", "env": "production-edge"}
SEED_NAMESPACE = "ai-workloads"
SEED_POLICY_ID = f"{SEED_NAMESPACE}/edge-ai-inference-cost-policy"
# How the tests run `edgepolicy serve` (plus --kubeconfig): its local OPA gets the seed policy and
# the warn-mode settings.
WEBHOOK_ARGS = ("--policies", str(SEED_POLICY), "--data", str(ASSETS / "settings.yaml"))
BUNDLE_KEY_ID = "edgepolicy-bundle"  # the key id deploy/base/opa-config.yaml verifies with
DENIED = 'admission webhook "validate.edgepolicy.apexlogic.com" denied the request'
POLICY_LABEL = "finops.apexlogic.com/policy"
IDLE_ANNOTATION = "finops.apexlogic.com/idle-shutdown-after"

T = TypeVar("T")


def _load_controlplane() -> ModuleType:
    """Import scripts/controlplane.py (a script, not a package) for its certificate helpers."""
    spec = importlib.util.spec_from_file_location(
        "edgepolicy_controlplane", ROOT / "scripts" / "controlplane.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


controlplane = _load_controlplane()


def _env_without_proxies() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def eventually(check: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.3) -> T:
    """Call ``check`` until it stops raising AssertionError; return its value or re-raise.

    Webhook configuration changes reach the API server's admission plugins through an informer,
    and the webhook caches cluster lookups for a few seconds, so some effects are not immediate.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


# --- kubectl ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kubectl:
    """Runs the pinned `kubectl` against the test control plane."""

    kubeconfig: Path

    def run(
        self, *args: str, stdin: str | None = None, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS``; raise AssertionError with its stderr if ``check`` and it failed."""
        env = _env_without_proxies()
        env["KUBECONFIG"] = str(self.kubeconfig)
        result = subprocess.run(
            [str(BIN / "kubectl"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def apply(
        self, *objects: Mapping[str, Any], extra: Sequence[str] = (), check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` the given objects and return the finished process."""
        document = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        return self.run("apply", *extra, "-f", "-", stdin=json.dumps(document), check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """Return the stored object, or None if it does not exist."""
        result = self.run(
            "get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found", check=True
        )
        return json.loads(result.stdout) if result.stdout.strip() else None

    def create_namespace(self, name: str) -> str:
        """Create namespace ``name`` if it is missing; return the name."""
        self.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, check=True
        )
        return name


def token_kubeconfig(
    kubectl: Kubectl, namespace: str, service_account: str, directory: Path
) -> Path:
    """Write a kubeconfig that authenticates as ServiceAccount ``namespace/service_account``.

    The token comes from the TokenRequest API (``kubectl create token``), as a pod would get one.
    """
    token = kubectl.run(
        "create", "token", service_account, "-n", namespace, "--duration=2h", check=True
    ).stdout.strip()
    admin = json.loads(kubectl.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {
                "name": service_account,
                "context": {"cluster": cluster["name"], "user": service_account},
            }
        ],
        "current-context": service_account,
    }
    path = directory / f"{namespace}-{service_account}.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def webhook_kubeconfig(kubectl: Kubectl, directory: Path) -> Path:
    """A kubeconfig for the webhook with exactly the shipped RBAC (deploy/base/rbac.yaml)."""
    kubectl.run("apply", "-f", str(ROOT / "deploy/base/namespace.yaml"), check=True)
    kubectl.run(
        "apply", "-n", "edgepolicy-system", "-f", str(ROOT / "deploy/base/rbac.yaml"), check=True
    )
    return token_kubeconfig(kubectl, "edgepolicy-system", "edgepolicy-webhook", directory)


# --- the webhook --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTls:
    """A CA and a serving certificate for 127.0.0.1, as files."""

    ca_pem: bytes
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_webhook_tls(directory: Path) -> WebhookTls:
    """Issue a test CA and a serving certificate for 127.0.0.1 into ``directory``."""
    ca = controlplane.write_webhook_certs(directory)
    return WebhookTls(
        ca.cert_pem, directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    )


@dataclass
class Webhook:
    """A running `edgepolicy serve` process; its output (and decision log) goes to ``log_file``."""

    process: subprocess.Popen[bytes]
    port: int
    log_file: Path
    tls: WebhookTls

    @property
    def url(self) -> str:
        """The webhook's base URL."""
        return f"https://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET ``path`` over TLS, trusting only the test CA; return status and body."""
        context = ssl.create_default_context(cafile=str(self.tls.ca_file))
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), urllib.request.ProxyHandler({})
        )
        try:
            with opener.open(self.url + path, timeout=timeout) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def decisions(self) -> list[dict[str, Any]]:
        """The structured decision log lines (``"event": "admission"``) written so far."""
        entries = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "admission":
                entries.append(entry)
        return entries

    def requests_answered(self) -> float:
        """Sum of the ``edgepolicy_admission_requests_total`` counters on /metrics."""
        status, body = self.get("/metrics")
        assert status == 200, body
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith("edgepolicy_admission_requests_total{")
        )

    def stop(self) -> None:
        """Stop the webhook: SIGTERM to its process group, SIGKILL after 10 s."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def start_webhook(
    tls: WebhookTls, log_file: Path, *, args: Sequence[str] = (), timeout: float = 60.0
) -> Webhook:
    """Start `edgepolicy serve ARGS` on a free loopback port; wait until /readyz answers 200."""
    port = controlplane.free_port()
    argv = [
        str(EDGEPOLICY), "serve",
        "--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        *args,
    ]  # fmt: skip
    return launch_webhook(argv, port, tls, log_file, timeout=timeout)


def start_seed_webhook(kubectl: Kubectl, tls: WebhookTls, directory: Path) -> Webhook:
    """Start the webhook with the seed policy and settings (``WEBHOOK_ARGS``), reading the
    cluster as the shipped ServiceAccount; its kubeconfig and log go to ``directory``."""
    kubeconfig = webhook_kubeconfig(kubectl, directory)
    return start_webhook(
        tls, directory / "webhook.log", args=[*WEBHOOK_ARGS, "--kubeconfig", str(kubeconfig)]
    )


def launch_webhook(
    argv: Sequence[str], port: int, tls: WebhookTls, log_file: Path, *, timeout: float = 60.0
) -> Webhook:
    """Run ``argv`` (an `edgepolicy serve` command listening on ``port`` with ``tls``).

    Waits until /readyz answers 200; fails the test with the webhook's output if it exits or
    is not ready within ``timeout`` seconds.
    """
    env = _env_without_proxies()
    env["EDGEPOLICY_OPA"] = str(BIN / "opa")
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    webhook = Webhook(process, port, log_file, tls)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"edgepolicy serve exited ({process.returncode}):\n{log_file.read_text()}")
        try:
            status, _ = webhook.get("/readyz", timeout=1.0)
        except OSError:
            status = 0
        if status == 200:
            return webhook
        time.sleep(0.2)
    webhook.stop()
    pytest.fail(f"edgepolicy serve not ready within {timeout:.0f}s:\n{log_file.read_text()}")


# --- webhook configurations ---------------------------------------------------------------------


def webhook_configurations(
    url: str, ca_pem: bytes, *, failure_policy: str = "Fail"
) -> list[dict[str, Any]]:
    """deploy/base's webhook configurations pointed at ``url`` (see scripts/controlplane.py)."""
    configurations: list[dict[str, Any]] = controlplane.webhook_configurations(
        url, ca_pem, failure_policy=failure_policy
    )
    return configurations


def unregister(kubectl: Kubectl, configurations: Sequence[Mapping[str, Any]]) -> None:
    """Delete the webhook configurations (ignoring ones already gone)."""
    for configuration in configurations:
        kubectl.run(
            "delete",
            configuration["kind"].lower(),
            configuration["metadata"]["name"],
            "--ignore-not-found",
            check=True,
        )


@contextmanager
def registered(kubectl: Kubectl, url: str, ca_pem: bytes) -> Iterator[list[dict[str, Any]]]:
    """Register the seed webhook at ``url`` (failurePolicy Fail) and wait until the API server
    calls it (a dry-run over-budget Deployment is denied); unregister on exit."""
    configurations = webhook_configurations(url, ca_pem)
    try:
        kubectl.apply(*configurations, check=True)
        # The API server picks configurations up asynchronously: wait until it asks the webhook.
        eventually(
            lambda: assert_denied(
                kubectl.apply(over_budget("probe"), extra=["--dry-run=server"]), "finops.cpu"
            )
        )
        yield configurations
    finally:
        unregister(kubectl, configurations)


# --- objects ------------------------------------------------------------------------------------


def seed_policy(namespace: str) -> dict[str, Any]:
    """The issue's seed FinOpsPolicy example, unchanged except for its namespace."""
    policy: dict[str, Any] = yaml.safe_load(SEED_POLICY.read_text())
    policy["metadata"]["namespace"] = namespace
    return policy


def deployment(
    name: str,
    namespace: str,
    *,
    replicas: int = 1,
    cpu: str = "1",
    memory: str = "1Gi",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A one-container Deployment whose pods carry ``labels`` (default: the seed's selector)."""
    pod_labels = dict(SEED_LABELS if labels is None else labels)
    template_metadata: dict[str, Any] = {"labels": pod_labels}
    if annotations:
        template_metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": copy.deepcopy(pod_labels)},
            "template": {
                "metadata": template_metadata,
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.example/ai/inference:1.0",
                            "resources": {
                                "requests": {"cpu": cpu, "memory": memory},
                                "limits": {"cpu": cpu, "memory": memory},
                            },
                        }
                    ]
                },
            },
        },
    }


def hpa(
    name: str, namespace: str, target: str, *, min_replicas: int, max_replicas: int, cpu: int
) -> dict[str, Any]:
    """An autoscaling/v2 HPA scaling Deployment ``target`` on CPU utilization ``cpu`` %."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu},
                    },
                }
            ],
        },
    }


def over_budget(name: str, namespace: str = SEED_NAMESPACE) -> dict[str, Any]:
    """Against the seed: 3 replicas x 4 cores (12 > 8) and x 1 GPU x 24 h (72 > 18 GPU-hours)."""
    obj = deployment(name, namespace, replicas=3, cpu="4", memory="8Gi")
    limits = obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    limits["nvidia.com/gpu"] = "1"
    return obj


def compliant(name: str, namespace: str = SEED_NAMESPACE) -> dict[str, Any]:
    """Against the seed: 3 replicas (its maxReplicas) x 2 cores (6 <= 8), x 4Gi (12 <= 32 GiB)."""
    return deployment(name, namespace, replicas=2, cpu="2", memory="4Gi")


def assert_denied(result: subprocess.CompletedProcess[str], *texts: str) -> None:
    """Assert kubectl failed because our validating webhook denied, naming ``texts``."""
    assert result.returncode != 0, f"admitted:\n{result.stdout}{result.stderr}"
    assert DENIED in result.stderr, result.stderr
    for text in texts:
        assert text in result.stderr, f"{text} not in:\n{result.stderr}"


# --- bundles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedBundle:
    """A bundle built by `edgepolicy bundle build` from a fresh Git repository, ES256-signed."""

    path: Path
    public_key: Path
    revision: str


def build_signed_bundle(work: Path, files: Mapping[str, bytes], out: Path) -> SignedBundle:
    """Commit ``files`` to a new Git repository under ``work`` and build its signed bundle."""
    repo = work / "policy-repo"
    repo.mkdir()
    for name, content in files.items():
        (repo / name).write_bytes(content)
    git = ["git", "-C", str(repo), "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "policies"], check=True)
    revision = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    key = ec.generate_private_key(ec.SECP256R1())
    signing_key = work / "signing.pem"
    signing_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_key = work / "bundle-verification.pem"
    public_key.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    built = subprocess.run(
        [
            str(EDGEPOLICY), "bundle", "build", "--repo", str(repo), "--out", str(out),
            "--signing-key", str(signing_key), "--key-id", BUNDLE_KEY_ID,
            "--opa", str(BIN / "opa"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return SignedBundle(out, public_key, revision)
