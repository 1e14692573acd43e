"""End to end: what the cluster does when the webhook is down.

The shipped configurations say ``failurePolicy: Fail``: with the webhook stopped, governed
namespaces refuse changes (fail closed) while kube-system and the webhook's own namespace keep
working, so the cluster can always be repaired. With ``Ignore`` the API server admits unchecked.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    SEED_NAMESPACE,
    Kubectl,
    WebhookTls,
    compliant,
    eventually,
    make_webhook_tls,
    over_budget,
    registered,
    start_seed_webhook,
    unregister,
    webhook_configurations,
)

pytestmark = pytest.mark.e2e

GOVERNED = "ai-failure"
FAILED_CALL = 'failed calling webhook "mutate.edgepolicy.apexlogic.com"'


@pytest.fixture(scope="module")
def down_webhook(
    kubectl: Kubectl, webhook_tls: WebhookTls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Registered (failurePolicy Fail), proven to answer, then stopped; yields its URL."""
    kubectl.create_namespace("ai-workloads")
    kubectl.create_namespace(GOVERNED)
    server = start_seed_webhook(kubectl, webhook_tls, tmp_path_factory.mktemp("webhook"))
    try:
        with registered(kubectl, server.url, webhook_tls.ca_pem):
            server.stop()
            yield server.url
    finally:
        server.stop()


def _register(kubectl: Kubectl, url: str, ca_pem: bytes, failure_policy: str) -> list[Any]:
    configurations = webhook_configurations(url, ca_pem, failure_policy=failure_policy)
    kubectl.apply(*configurations, check=True)
    return configurations


def test_fail_policy_refuses_changes_in_governed_namespaces(
    kubectl: Kubectl, down_webhook: str
) -> None:
    result = kubectl.apply(compliant("while-down", GOVERNED))

    assert result.returncode != 0
    assert FAILED_CALL in result.stderr, result.stderr
    assert kubectl.get("deployment", "while-down", GOVERNED) is None


def test_kube_system_and_the_webhook_namespace_still_work(
    kubectl: Kubectl, down_webhook: str
) -> None:
    # edgepolicy-system exists: the fixture created it (deploy/base/namespace.yaml) for the RBAC.
    system = kubectl.apply(compliant("dns-fix", "kube-system"))
    own = kubectl.apply(compliant("webhook-fix", "edgepolicy-system"))

    assert system.returncode == 0, system.stderr
    assert own.returncode == 0, own.stderr
    assert kubectl.get("deployment", "dns-fix", "kube-system") is not None
    assert kubectl.get("deployment", "webhook-fix", "edgepolicy-system") is not None


def test_ignore_policy_admits_unchecked_while_down(
    kubectl: Kubectl, down_webhook: str, webhook_tls: WebhookTls
) -> None:
    _register(kubectl, down_webhook, webhook_tls.ca_pem, "Ignore")
    try:
        # Even a Deployment over the seed's budget passes: Ignore trades enforcement away.
        result = eventually(lambda: _admitted(kubectl.apply(over_budget("unchecked"))))
    finally:
        _register(kubectl, down_webhook, webhook_tls.ca_pem, "Fail")

    assert "deployment.apps/unchecked created" in result
    assert kubectl.get("deployment", "unchecked", SEED_NAMESPACE) is not None


def _admitted(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def test_a_webhook_the_ca_bundle_does_not_vouch_for_is_not_trusted(
    kubectl: Kubectl,
    webhook_tls: WebhookTls,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    kubectl.create_namespace(GOVERNED)
    server = start_seed_webhook(kubectl, webhook_tls, tmp_path)
    other_ca = make_webhook_tls(tmp_path_factory.mktemp("other-ca"))
    configurations = webhook_configurations(server.url, other_ca.ca_pem)
    try:
        kubectl.apply(*configurations, check=True)

        eventually(lambda: _refused_for_tls(kubectl.apply(compliant("impostor", GOVERNED))))

        assert kubectl.get("deployment", "impostor", GOVERNED) is None
        assert not [e for e in server.decisions() if e["name"] == "impostor"]
    finally:
        unregister(kubectl, configurations)
        server.stop()


def _refused_for_tls(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert FAILED_CALL in result.stderr, result.stderr
    assert "x509" in result.stderr or "certificate" in result.stderr, result.stderr
