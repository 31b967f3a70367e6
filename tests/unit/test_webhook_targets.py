"""jobrelay.webhook_targets: which webhook addresses are refused (no connection is made)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from jobrelay.webhook_targets import (
    RefusedTarget,
    UnresolvedTarget,
    WebhookTargetSettings,
    check_url,
)

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


LOOPBACK_ALLOWED = WebhookTargetSettings.model_validate({"allowed_networks": ["127.0.0.0/8"]})


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[::7f00:1]/",  # IPv4-compatible
        "http://[::ffff:0:a00:1]/",  # SIIT of 10.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[64:ff9b:1::7f00:1]/",  # local-use NAT64
        "http://[2001:0:5ef5:79fd::1]/",  # Teredo
    ],
)
async def test_ipv6_addresses_carrying_a_non_public_ipv4_are_refused(url: str) -> None:
    # Even where the operator admits 127.0.0.0/8: that admits IPv4 loopback, not a
    # translator's way to it.
    with pytest.raises(RefusedTarget):
        await check_url(url, LOOPBACK_ALLOWED)


@pytest.mark.anyio
async def test_nat64_and_6to4_of_a_public_ipv4_are_let_through() -> None:
    # An IPv6-only cluster reaches IPv4 receivers through NAT64: 93.184.215.14 in both forms.
    await check_url("http://[64:ff9b::5db8:d70e]/", NONE_ALLOWED)
    await check_url("http://[2002:5db8:d70e::1]/", NONE_ALLOWED)


@pytest.mark.anyio
async def test_a_refusal_never_names_the_address_a_name_resolved_to() -> None:
    # The address would tell a client what jobrelay's DNS answers for internal names.
    with pytest.raises(RefusedTarget) as refused:
        await check_url("http://localhost:8000/", NONE_ALLOWED)
    assert "127.0.0.1" not in str(refused.value)
    assert "::1" not in str(refused.value)


@pytest.mark.anyio
async def test_a_slow_resolver_times_out_without_tying_up_the_default_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The system resolver (socket.getaddrinfo) is replaced by one that hangs for 3 s, as a
    DNS server that never answers would; 20 webhook checks start at once."""
    release = threading.Event()

    def hanging(*args: object, **kwargs: object) -> list[object]:
        release.wait(3)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    settings = WebhookTargetSettings(resolve_timeout_seconds=0.5)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    checks = [asyncio.create_task(check_url(f"http://slow-{i}.test/", settings)) for i in range(20)]
    await asyncio.sleep(0.1)
    # The loop's default executor (FastAPI's sync dependencies, other lookups) still runs.
    await asyncio.wait_for(loop.run_in_executor(None, lambda: None), 0.5)
    outcomes = await asyncio.gather(*checks, return_exceptions=True)
    release.set()
    assert all(isinstance(o, UnresolvedTarget) for o in outcomes), outcomes
    assert time.monotonic() - started < 2
