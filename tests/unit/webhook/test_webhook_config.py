"""The webhook configuration: deadline budget split between lookups and OPA."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from edgepolicy.webhook.config import RESPONSE_MARGIN_SECONDS, WebhookConfig

from edgepolicy.cli import main
from edgepolicy.errors import UsageError

KeyPairWriter = Callable[..., object]


def test_the_budget_fits_the_deadline_with_as_much_again_for_queueing() -> None:
    config = WebhookConfig(opa_url="http://o:1", timeout=3.0)
    assert config.kube_timeout == 1.0
    assert config.opa_timeout(with_kube=False) == pytest.approx((3.0 - RESPONSE_MARGIN_SECONDS) / 2)
    slack = config.opa_timeout(with_kube=True)
    total = config.kube_timeout + config.opa_timeout(with_kube=True) + slack
    assert total + RESPONSE_MARGIN_SECONDS == pytest.approx(3.0)


def test_short_deadlines_give_lookups_a_third() -> None:
    assert WebhookConfig(opa_url="http://o:1", timeout=0.9).kube_timeout == pytest.approx(0.3)


@pytest.mark.parametrize("timeout", [0, -1, RESPONSE_MARGIN_SECONDS * 2])
def test_deadlines_too_short_to_ask_opa_are_refused(timeout: float) -> None:
    with pytest.raises(UsageError) as refused:
        WebhookConfig(opa_url="http://o:1", timeout=timeout)
    assert str(refused.value) == (
        f"{timeout:g}: the deadline for answering an AdmissionReview must be more than 0.2 seconds"
    )  # the library names no flag: serve adds it


def test_serve_names_the_flag_of_a_too_short_deadline(
    tmp_path: Path, write_key_pair: KeyPairWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    write_key_pair(tmp_path / "c.pem", tmp_path / "k.pem", "webhook")
    tls = ["--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem")]
    code = main(["serve", *tls, "--opa-url", "http://127.0.0.1:9", "--timeout", "0.1"])
    assert code == 2
    assert capsys.readouterr().err == (
        "edgepolicy: error: --timeout 0.1: the deadline for answering an AdmissionReview must be "
        "more than 0.2 seconds\n"
    )
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # later metrics in this process stay plain
