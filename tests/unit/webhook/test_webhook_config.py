"""The webhook configuration: deadline budget split between lookups and OPA."""

from __future__ import annotations

import pytest
from edgepolicy.webhook.config import RESPONSE_MARGIN_SECONDS, WebhookConfig

from edgepolicy.errors import UsageError


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
    with pytest.raises(UsageError, match="--timeout"):
        WebhookConfig(opa_url="http://o:1", timeout=timeout)
