"""End to end, as deployed: the Deployment's two containers, run as processes from deploy/base.

The OPA sidecar runs the real OPA with the container's own arguments and the ConfigMap's
opa-config.yaml (only addresses and file paths are rewritten for this machine). It pulls a bundle
built and signed by `edgepolicy bundle build` from `edgepolicy bundle serve`. The webhook runs
with the webhook container's arguments (``--opa-url`` to the sidecar). The real API server then
asks it about objects that `kubectl` applies.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import (
    BIN,
    EDGEPOLICY,
    IDLE_ANNOTATION,
    POLICY_LABEL,
    ROOT,
    SEED_POLICY,
    SEED_POLICY_ID,
    Kubectl,
    Webhook,
    WebhookTls,
    assert_denied,
    build_signed_bundle,
    compliant,
    controlplane,
    eventually,
    launch_webhook,
    over_budget,
    unregister,
    webhook_configurations,
    webhook_kubeconfig,
)
from e2e_support import (
    BUNDLE_KEY_ID as KEY_ID,
)

from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.opa_client import OpaClient

pytestmark = pytest.mark.e2e

DEPLOYMENT = ROOT / "deploy" / "base" / "deployment.yaml"
OPA_CONFIG = ROOT / "deploy" / "base" / "opa-config.yaml"


def container(name: str) -> dict[str, Any]:
    """The container ``name`` of the shipped Deployment."""
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    for entry in deployment["spec"]["template"]["spec"]["containers"]:
        if entry["name"] == name:
            return dict(entry)
    raise AssertionError(f"no container {name} in {DEPLOYMENT}")


def rewrite(args: list[str], replacements: dict[str, str]) -> list[str]:
    """Replace the values of ``--flag=value`` arguments; every flag named must be present."""
    result, seen = [], set()
    for arg in args:
        flag, equals, _ = arg.partition("=")
        if equals and flag in replacements:
            result.append(f"{flag}={replacements[flag]}")
            seen.add(flag)
        elif equals and flag == "--set-file" and "--set-file" in replacements:
            result.append(f"--set-file={replacements['--set-file']}")
            seen.add(flag)
        else:
            result.append(arg)
    assert seen == set(replacements), f"flags not in the container: {set(replacements) - seen}"
    return result


@dataclass
class Process:
    """A background process whose output goes to a log file."""

    process: subprocess.Popen[bytes]
    log_file: Path

    @classmethod
    def start(cls, argv: list[str], log_file: Path) -> Process:
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(process, log_file)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")


def http_status(url: str) -> int:
    """GET ``url`` without proxies; return the HTTP status (0 if nothing answered)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@dataclass
class SignedBundleService:
    """`edgepolicy bundle serve` holding the seed policy's bundle, signed with an ES256 key."""

    url: str
    public_key: Path
    server: Process


@pytest.fixture(scope="module")
def bundle_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedBundleService]:
    """A Git policy repository (the seed policy, model.quantization in warn mode), built into a
    signed bundle and served."""
    work = tmp_path_factory.mktemp("bundles")
    served = work / "served"
    served.mkdir()
    bundle = build_signed_bundle(
        work,
        {
            "edge-ai-inference-cost-policy.yaml": SEED_POLICY.read_bytes(),
            # Rolled out in warn mode through Git (no model facts are verified in these tests).
            "edgepolicy-settings.yaml": b"enforcementActions:\n  model.quantization: warn\n",
        },
        served / "edgepolicy.tar.gz",
    )
    port = controlplane.free_port()
    server = Process.start(
        [str(EDGEPOLICY), "bundle", "serve", "--dir", str(served), "--port", str(port)],
        work / "bundle-serve.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _assert_status(f"{url}/edgepolicy.tar.gz", 200), timeout=30)
        yield SignedBundleService(url, bundle.public_key, server)
    finally:
        server.stop()


def _assert_status(url: str, expected: int) -> None:
    assert http_status(url) == expected


@dataclass
class Sidecar:
    """The OPA sidecar as a process, with the Deployment's arguments."""

    url: str
    health_url: str
    argv: list[str]
    process: Process


def start_sidecar(
    service: SignedBundleService, work: Path, persistence: Path, log_name: str
) -> Sidecar:
    """Run the OPA container's arguments with the ConfigMap's config, adapted to this machine."""
    config = yaml.safe_load(OPA_CONFIG.read_text())
    config["services"]["bundles"]["url"] = service.url
    config["persistence_directory"] = str(persistence)
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    port, diagnostic_port = controlplane.free_ports(2)
    args = rewrite(
        container("opa")["args"],
        {
            "--addr": f"127.0.0.1:{port}",
            "--diagnostic-addr": f"127.0.0.1:{diagnostic_port}",
            "--config-file": str(config_file),
            "--set-file": f"keys.{KEY_ID}.key={service.public_key}",
        },
    )
    process = Process.start([str(BIN / "opa"), *args], work / log_name)
    sidecar = Sidecar(
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{diagnostic_port}/health?bundles=true",
        args,
        process,
    )
    try:
        # The readiness probe's question: is the signed bundle activated?
        eventually(lambda: _assert_status(sidecar.health_url, 200), timeout=30)
    except AssertionError:
        process.stop()
        pytest.fail(f"the OPA sidecar never activated the bundle:\n{process.output()}")
    return sidecar


@pytest.fixture(scope="module")
def sidecar(
    bundle_service: SignedBundleService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sidecar]:
    """The OPA sidecar, ready (its bundle verified and activated)."""
    work = tmp_path_factory.mktemp("sidecar")
    started = start_sidecar(bundle_service, work, work / "persisted", "opa.log")
    yield started
    started.process.stop()


@pytest.fixture(scope="module")
def deployed_webhook(
    kubectl: Kubectl,
    sidecar: Sidecar,
    webhook_tls: WebhookTls,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Webhook]:
    """The webhook container's command, asking the sidecar, registered with the API server."""
    kubectl.create_namespace("ai-workloads")
    webhook = container("webhook")
    port = controlplane.free_port()
    argv = [str(EDGEPOLICY)] + rewrite(
        webhook["args"],
        {
            "--host": "127.0.0.1",
            "--port": str(port),
            "--probe-port": str(controlplane.free_port()),
            "--tls-cert": str(webhook_tls.cert_file),
            "--tls-key": str(webhook_tls.key_file),
            "--opa-url": sidecar.url,
        },
    )
    work = tmp_path_factory.mktemp("deployed-webhook")
    # In a pod the ServiceAccount's token is mounted; here the same identity comes as a kubeconfig.
    argv += ["--kubeconfig", str(webhook_kubeconfig(kubectl, work))]
    server = launch_webhook(argv, port, webhook_tls, work / "webhook.log")
    configurations = webhook_configurations(server.url, webhook_tls.ca_pem)
    try:
        kubectl.apply(*configurations, check=True)
        yield server
    finally:
        unregister(kubectl, configurations)
        server.stop()


def test_container_command_is_edgepolicy() -> None:
    assert container("webhook")["command"] == ["edgepolicy"]


def test_the_webhook_s_probes_ask_the_probe_port_in_plain_http() -> None:
    webhook = container("webhook")
    ports = {port["name"]: port["containerPort"] for port in webhook["ports"]}
    assert f"--probe-port={ports['probes']}" in webhook["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert webhook[probe]["httpGet"]["port"] == "probes"
        assert webhook[probe]["httpGet"]["scheme"] == "HTTP"
    assert container("opa")["args"][:2] == ["run", "--server"]


def test_sidecar_refuses_to_start_without_the_verification_key(
    bundle_service: SignedBundleService, tmp_path: Path
) -> None:
    config = yaml.safe_load(OPA_CONFIG.read_text())
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    args = [arg for arg in container("opa")["args"] if not arg.startswith("--set-file")]
    args = rewrite(args, {"--config-file": str(config_file), "--addr": "127.0.0.1:0"})

    result = subprocess.run(
        [str(BIN / "opa"), *args], capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode != 0
    assert f"no keys provided for key ID {KEY_ID}" in result.stdout + result.stderr


def test_deployed_webhook_denies_with_policy_from_the_signed_bundle(
    kubectl: Kubectl, deployed_webhook: Webhook
) -> None:
    result = eventually(lambda: _denied(kubectl.apply(over_budget("bundle-too-big"))))

    assert SEED_POLICY_ID in result
    assert kubectl.get("deployment", "bundle-too-big", "ai-workloads") is None


def test_deployed_webhook_admits_mutates_and_warns(
    kubectl: Kubectl, deployed_webhook: Webhook
) -> None:
    eventually(lambda: _denied(kubectl.apply(over_budget("probe"), extra=["--dry-run=server"])))

    result = kubectl.apply(compliant("bundle-inference"))

    assert result.returncode == 0, result.stderr
    assert "Warning:" in result.stderr and "model.quantization" in result.stderr
    stored = kubectl.get("deployment", "bundle-inference", "ai-workloads")
    assert stored is not None
    assert stored["metadata"]["labels"][POLICY_LABEL] == "edge-ai-inference-cost-policy"
    assert stored["spec"]["template"]["metadata"]["annotations"][IDLE_ANNOTATION] == "30m"


def test_restarted_sidecar_enforces_the_persisted_bundle_without_the_service(
    bundle_service: SignedBundleService, tmp_path: Path
) -> None:
    persistence = tmp_path / "persisted"
    first = start_sidecar(bundle_service, tmp_path, persistence, "first.log")
    first.process.stop()
    bundle_service.server.stop()  # the bundle service goes away (last test of the module)

    second = start_sidecar(bundle_service, tmp_path, persistence, "second.log")
    try:
        assert http_status(second.health_url) == 200
        # It decides with the persisted policy: the seed policy denies, the settings committed
        # with it keep model.quantization in warn mode.
        opa = OpaClient(second.url)
        denied = opa.decide(decision_input(admission_review(over_budget("after-restart"))))
        assert not denied.allowed
        assert "finops.cpu" in {finding.rule for finding in denied.violations}
        assert SEED_POLICY_ID in denied.policies
        admitted = opa.decide(decision_input(admission_review(compliant("after-restart"))))
        assert admitted.allowed
        assert "model.quantization" in {finding.rule for finding in admitted.warnings}
    finally:
        second.process.stop()


def _denied(result: subprocess.CompletedProcess[str]) -> str:
    assert_denied(result, "finops.cpu")
    return result.stderr
