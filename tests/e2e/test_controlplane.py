"""scripts/controlplane.sh, driven as users drive it.

start/stop/status are idempotent and recover from dead processes, a missing binary is named with
the fix, and webhook-config keeps the shipped webhook settings.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from e2e_support import ROOT, Kubectl, controlplane

pytestmark = pytest.mark.e2e

SCRIPT = ROOT / "scripts" / "controlplane.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=180, env=env, check=False
    )


def state(run_dir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((run_dir / "controlplane/state.json").read_text())
    return loaded


def test_start_on_a_running_plane_keeps_it(kubectl: Kubectl) -> None:
    run_dir = kubectl.kubeconfig.parent
    before = state(run_dir)

    again = run("--dir", str(run_dir), "start")
    status = run("--dir", str(run_dir), "status")

    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert state(run_dir) == before
    assert status.returncode == 0
    assert "kube-apiserver: ready" in status.stdout


def test_stop_start_and_recovery_from_a_dead_api_server(tmp_path: Path) -> None:
    directory = ["--dir", str(tmp_path)]
    try:
        assert run(*directory, "start").returncode == 0
        first = state(tmp_path)
        os.kill(int(str(first["apiserver_pid"])), signal.SIGKILL)  # a process we started
        deadline = time.monotonic() + 10
        while run(*directory, "status").returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)

        not_ready = run(*directory, "status")
        restarted = run(*directory, "start")

        assert not_ready.returncode == 1
        assert "kube-apiserver: not ready" in not_ready.stdout
        assert restarted.returncode == 0, restarted.stderr
        assert "control plane started" in restarted.stdout
        assert state(tmp_path)["server"] != first["server"]
        assert run(*directory, "status").returncode == 0
    finally:
        stopped = run(*directory, "stop")
    again = run(*directory, "stop")
    status = run(*directory, "status")

    assert "control plane stopped" in stopped.stdout
    assert "control plane not running" in again.stdout and again.returncode == 0
    assert status.returncode == 1


def test_missing_binaries_are_named_with_the_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
    env["PATH"] = "/usr/bin:/bin"

    result = run("--dir", str(tmp_path), "--bin-dir", str(tmp_path / "none"), "start", env=env)

    assert result.returncode == 1
    assert "etcd not found" in result.stderr
    assert "scripts/install-tools.sh k8s etcd" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "controlplane" / "state.json").exists()


def test_webhook_config_points_the_shipped_configurations_at_a_url(tmp_path: Path) -> None:
    certs = run("webhook-certs", "--out", str(tmp_path))
    printed = run(
        "webhook-config", "--url", "https://127.0.0.1:9443", "--ca-file", str(tmp_path / "ca.crt"),
        "--failure-policy", "Ignore",
    )  # fmt: skip

    assert certs.returncode == 0 and printed.returncode == 0, certs.stderr + printed.stderr
    shipped = [d for d in yaml.safe_load_all((ROOT / "deploy/base/webhooks.yaml").read_text()) if d]
    items = json.loads(printed.stdout)["items"]
    assert [item["kind"] for item in items] == [doc["kind"] for doc in shipped]
    for item, original in zip(items, shipped, strict=True):
        for hook, shipped_hook in zip(item["webhooks"], original["webhooks"], strict=True):
            path = shipped_hook["clientConfig"]["service"]["path"]
            assert hook["clientConfig"]["url"] == f"https://127.0.0.1:9443{path}"
            assert hook["failurePolicy"] == "Ignore"
            for key in ("rules", "namespaceSelector", "timeoutSeconds", "sideEffects"):
                assert hook[key] == shipped_hook[key]
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0


def test_webhook_config_refuses_an_unreadable_ca_file(tmp_path: Path) -> None:
    result = run("webhook-config", "--url", "https://127.0.0.1:1", "--ca-file", str(tmp_path / "x"))

    assert result.returncode == 1
    assert f"--ca-file: cannot read {tmp_path / 'x'}" in result.stderr


def test_issued_serving_certificate_names_loopback() -> None:
    ca = controlplane.new_ca("test-ca")
    pair = controlplane.issue_cert(ca, "server", ip_addresses=["127.0.0.1"])
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.issuer == x509.load_pem_x509_certificate(ca.cert_pem).subject


def test_start_retries_when_a_picked_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    real_free_ports = controlplane.free_ports
    picks = iter([[busy.getsockname()[1], *real_free_ports(2)]])  # etcd's client port is taken
    monkeypatch.setattr(
        controlplane, "free_ports", lambda count: next(picks, None) or real_free_ports(count)
    )
    plane = controlplane.ControlPlane(tmp_path)
    try:
        started = plane.start(timeout=90)

        assert plane.is_ready(started)
        assert started.etcd_url != f"http://127.0.0.1:{busy.getsockname()[1]}"
    finally:
        plane.stop()
        busy.close()
