"""jobrelay.webhook_targets: which webhook addresses are refused (no connection is made)."""

from __future__ import annotations

import pytest

from jobrelay.webhook_targets import RefusedTarget, WebhookTargetSettings, check_url

NONE_ALLOWED = WebhookTargetSettings(allowed_networks=[])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://localhost/",  # resolved from /etc/hosts, then refused as loopback
        "http://169.254.169.254/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.64.0.1/",  # carrier-grade NAT, not public
        "http://224.0.0.1/",
        "ftp://example.com/",
        "http://10.0.0.1:99999/",
    ],
)
async def test_non_public_targets_are_refused(url: str) -> None:
    with pytest.raises(RefusedTarget):
        await check_url(url, NONE_ALLOWED)


@pytest.mark.anyio
async def test_an_allowed_network_is_let_through() -> None:
    allowed = WebhookTargetSettings.model_validate({"allowed_networks": ["127.0.0.0/8"]})
    await check_url("http://127.0.0.1:8000/hook", allowed)
    with pytest.raises(RefusedTarget):
        await check_url("http://10.0.0.1/hook", allowed)


@pytest.mark.anyio
async def test_a_public_address_is_let_through() -> None:
    await check_url("https://93.184.215.14/hook", NONE_ALLOWED)
