"""Where a webhook may be delivered: never into jobrelay's own network (no SSRF).

A client names the webhook URL, and status POSTs to it from inside the deployment; without
this check a client could make jobrelay call the cloud metadata service (169.254.169.254),
a sidecar, Redis, or any private address. Loopback, link-local, private, reserved, multicast
and unspecified addresses are refused unless an operator allows a network explicitly
(`JOBRELAY_WEBHOOK_ALLOWED_NETWORKS`; the local run and the tests allow 127.0.0.0/8).

- A host name is resolved, and every address it resolves to must pass: a public name that
  points at a private address is refused too.
- The addresses that passed are the ones connected to (`Target.addresses`): status never
  resolves the name a second time, so a name that answers a public address to the check
  and 127.0.0.1 to the connection (DNS rebinding) gets nowhere.
- An IPv6 address that carries an IPv4 one (IPv4-mapped, IPv4-compatible, SIIT, NAT64
  64:ff9b::/96, 6to4 2002::/16) is judged by the IPv4 address, which must be public: the
  allowed networks never apply through a translator, so `[::ffff:127.0.0.1]` or
  `[64:ff9b::7f00:1]` cannot reach a loopback that 127.0.0.0/8 admits. Teredo and the
  local-use NAT64 prefix 64:ff9b:1::/48, whose embedded address cannot be read back
  reliably, are refused outright. (A NAT64 gateway on a prefix of its own is invisible
  here: the egress NetworkPolicy in k8s/ is the second wall.)
- Names are resolved with the system's resolver (so /etc/hosts and search domains work) on
  a few threads of their own, under a timeout: a slow DNS server ties up those threads,
  never the event loop's default executor that the rest of the app relies on.

Messages say why a URL is refused without naming the address a name resolved to: that
would let a client read jobrelay's internal DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
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
    resolve_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Longest wait for a webhook host's addresses."
    )
    resolver_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Threads that resolve webhook hosts (the system resolver blocks a thread).",
    )


class RefusedTarget(Exception):
    """The URL points where jobrelay must not send requests."""


class UnresolvedTarget(RefusedTarget):
    """The host did not resolve (or not in time): may pass later, unlike a refused address."""


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL with the addresses that passed the check: connect to these only."""

    url: str
    host: str  # the name (or literal) the URL gives: the Host header and TLS's SNI
    port: int
    addresses: tuple[Address, ...]


_REFUSED = (
    "the webhook URL's address is not public (loopback, private, link-local or reserved); "
    "an operator may allow a network in JOBRELAY_WEBHOOK_ALLOWED_NETWORKS"
)

# Prefixes whose addresses carry an IPv4 address in their last 32 bits.
_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # SIIT, IPv4-translated
        "64:ff9b::/96",  # NAT64, the well-known prefix
        "::/96",  # IPv4-compatible (deprecated); :: and ::1 are handled as themselves
    )
)
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
# Carry IPv4 addresses that cannot be read back reliably (local-use NAT64 puts them at a
# place that depends on the operator's prefix length; Teredo obfuscates the client's).
_OPAQUE = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "2001::/32"))
_SELF = (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1"))


def _embedded(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _SELF:
        return None
    if any(address in network for network in _LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def _public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


def check_address(address: Address, settings: WebhookTargetSettings) -> None:
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _OPAQUE):
            raise RefusedTarget(
                "the webhook URL's IPv6 address carries an IPv4 address through Teredo or a "
                "local NAT64 prefix; use the IPv4 address or a host name"
            )
        inner = _embedded(address)
        if inner is not None:
            if not _public(inner):
                raise RefusedTarget(
                    "the webhook URL's IPv6 address carries an IPv4 address that is not "
                    "public (IPv4-mapped, NAT64 or 6to4)"
                )
            return
    if _public(address) or any(address in network for network in settings.allowed_networks):
        return
    raise RefusedTarget(_REFUSED)


@lru_cache(maxsize=1)
def _resolver_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook-dns")


async def resolve(host: str, port: int, settings: WebhookTargetSettings) -> list[Address]:
    """`host`'s addresses from the system resolver, on the resolver's own threads; a
    timeout or a failure is UnresolvedTarget."""
    loop = asyncio.get_running_loop()
    lookup = loop.run_in_executor(
        _resolver_pool(settings.resolver_threads),
        socket.getaddrinfo,
        host,
        port,
        0,
        socket.SOCK_STREAM,
    )
    try:
        infos = await asyncio.wait_for(lookup, settings.resolve_timeout_seconds)
    except TimeoutError:
        raise UnresolvedTarget(
            f"the webhook URL's host did not resolve within {settings.resolve_timeout_seconds:g} s"
        ) from None
    except (OSError, UnicodeError):
        raise UnresolvedTarget("the webhook URL's host does not resolve") from None
    # Scope ids (fe80::1%eth0) are dropped: the address is what the check is about.
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


async def resolve_target(url: str, settings: WebhookTargetSettings | None = None) -> Target:
    """The URL and the addresses to deliver it to; RefusedTarget unless every address its
    host stands for may be called."""
    settings = settings or get_target_settings()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget("a webhook URL must be http(s) with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedTarget("the webhook URL's port is not a valid port") from None
    try:
        addresses: list[Address] = [ipaddress.ip_address(parts.hostname)]
    except ValueError:
        addresses = await resolve(parts.hostname, port, settings)
    if not addresses:
        raise UnresolvedTarget("the webhook URL's host does not resolve")
    for address in addresses:
        check_address(address, settings)
    return Target(url, parts.hostname, port, tuple(addresses))


async def check_url(url: str, settings: WebhookTargetSettings | None = None) -> None:
    """RefusedTarget unless `url` may be called (intake's check at submit)."""
    await resolve_target(url, settings)


@lru_cache
def get_target_settings() -> WebhookTargetSettings:
    return WebhookTargetSettings()
