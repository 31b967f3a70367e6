"""Where a webhook may be delivered: never into jobrelay's own network (no SSRF).

A client names the webhook URL, and status POSTs to it from inside the deployment; without
this check a client could make jobrelay call the cloud metadata service (169.254.169.254),
a sidecar, Redis, or any private address. Loopback, link-local, private, reserved, multicast
and unspecified addresses are refused unless an operator allows a network explicitly
(`JOBRELAY_WEBHOOK_ALLOWED_NETWORKS`; the local run and the tests allow 127.0.0.0/8).

Hostnames are resolved and every address they resolve to is checked, so a public name that
points at a private address is refused too. Intake checks at submit (a clear 422 at once);
status checks again right before each delivery, since DNS may have changed in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork
from pydantic_settings import BaseSettings, SettingsConfigDict

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookTargetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBRELAY_WEBHOOK_", extra="ignore", frozen=True)

    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks webhooks may reach although they are not public, as JSON, e.g. "
        '["127.0.0.0/8"] for a local receiver. Empty: public addresses only.',
    )


class RefusedTarget(Exception):
    """The URL points where jobrelay must not send requests."""


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not address.is_multicast


def check_address(address: Address, settings: WebhookTargetSettings) -> None:
    if _public(address):
        return
    if any(address in network for network in settings.allowed_networks):
        return
    raise RefusedTarget(
        f"webhook address {address} is not public (loopback, private, link-local or "
        "reserved); an operator may allow it in JOBRELAY_WEBHOOK_ALLOWED_NETWORKS"
    )


async def resolve(host: str, port: int) -> list[Address]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RefusedTarget(f"webhook host {host} does not resolve: {exc}") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def check_url(url: str, settings: WebhookTargetSettings | None = None) -> None:
    """RefusedTarget unless every address `url`'s host stands for may be called."""
    settings = settings or WebhookTargetSettings()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget("a webhook URL must be http(s) with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RefusedTarget(f"a webhook URL with a bad port: {exc}") from exc
    try:
        addresses: list[Address] = [ipaddress.ip_address(parts.hostname)]
    except ValueError:
        addresses = await resolve(parts.hostname, port)
    for address in addresses:
        check_address(address, settings)
