"""Client authentication: API keys mapped to tenants, read through a Dapr secret store.

Only hashes of keys are stored: a leaked secret store lists tenants, not usable keys. A key
is 32 random bytes, so a single SHA-256 is enough (there is nothing to brute-force, unlike a
password); a slow password hash would only add latency to every request.

The secret (named by `JOBRELAY_AUTH_SECRET_NAME`, in the Dapr secret store named by
`JOBRELAY_AUTH_SECRET_STORE`) holds a JSON object `{"<sha256 hex of key>": "<tenant>"}`. A
store that answers several values for one secret (Kubernetes, Key Vault) may split the
object across them: all are merged.

Without a secret store, authentication is off and every caller is the `default` tenant. That
is allowed on loopback only, with a warning at start-up; `check_bind` refuses any other
address, so a server reachable from the network never runs without it.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import logging
import secrets
import sys
from dataclasses import dataclass
from typing import Annotated

from dapr.aio.clients import DaprClient
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobrelay.errors import ApiError

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
# Recognisable in logs and by secret scanners; the rest is 32 bytes from the OS's CSPRNG.
KEY_PREFIX = "jr_"


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBRELAY_AUTH_", extra="ignore", frozen=True)

    secret_store: str | None = Field(
        default=None,
        description="Dapr secret store holding the API key hashes; unset = authentication off "
        "(loopback only).",
    )
    secret_name: str = Field(default="API_KEYS", description="The secret in that store.")


class AuthNotConfigured(SystemExit):
    """Start-up refused: the app would be reachable without authentication."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname may resolve anywhere: treat it as reachable


def check_bind(host: str, settings: AuthSettings | None = None) -> None:
    """Refuse to serve clients on a non-loopback address with authentication off."""
    settings = settings or AuthSettings()
    if settings.secret_store is None and not is_loopback(host):
        raise AuthNotConfigured(
            f"refusing to bind {host} without authentication: set JOBRELAY_AUTH_SECRET_STORE "
            "(README, Security), or bind 127.0.0.1"
        )


@dataclass(frozen=True)
class Authenticator:
    """`tenants` maps key hashes to tenants; None means authentication is off."""

    tenants: dict[str, str] | None

    def tenant_for(self, key: str | None) -> str:
        if self.tenants is None:
            return DEFAULT_TENANT
        tenant = self.tenants.get(hash_key(key)) if key else None
        if tenant is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer <key>)",
                {"WWW-Authenticate": "Bearer"},
            )
        return tenant


def parse_key_table(values: dict[str, str]) -> dict[str, str]:
    table: dict[str, str] = {}
    for raw in values.values():
        if not raw.strip():
            continue
        loaded = json.loads(raw)
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in loaded.items()
        ):
            raise ValueError("the API key secret must be a JSON object of hash -> tenant")
        table.update(loaded)
    return table


async def load(dapr: DaprClient, settings: AuthSettings | None = None) -> Authenticator:
    """The key table from the secret store; start-up fails if auth is on but has no keys, so
    a typo in the secret's name cannot silently lock every client out (or let them in)."""
    settings = settings or AuthSettings()
    if settings.secret_store is None:
        log.warning(
            "AUTHENTICATION IS OFF: every caller is tenant %r. Loopback only; set "
            "JOBRELAY_AUTH_SECRET_STORE before exposing this service (README, Security).",
            DEFAULT_TENANT,
        )
        return Authenticator(None)
    secret = await dapr.get_secret(settings.secret_store, settings.secret_name)
    table = parse_key_table(dict(secret.secret))
    if not table:
        raise AuthNotConfigured(
            f"secret {settings.secret_name!r} in store {settings.secret_store!r} holds no keys"
        )
    log.info("authentication on: %d API keys, %d tenants", len(table), len(set(table.values())))
    return Authenticator(table)


# auto_error=False: a missing header is answered by Authenticator with the API's own error
# shape (and not at all while authentication is off).
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def current_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    authenticator: Authenticator = request.app.state.auth
    return authenticator.tenant_for(credentials.credentials if credentials else None)


TenantDep = Annotated[str, Depends(current_tenant)]


def main() -> None:
    """`python -m jobrelay.auth new-key --tenant acme`: a key for the client, and the line
    for the secret store (only the hash is stored)."""
    parser = argparse.ArgumentParser(prog="python -m jobrelay.auth")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-key", help="create an API key for a tenant")
    new.add_argument("--tenant", required=True)
    args = parser.parse_args()
    key = new_key()
    # Written, not logged: this is the command's output, read by a person once.
    out = json.dumps({"api_key": key, "secret_entry": {hash_key(key): args.tenant}}, indent=2)
    sys.stdout.write(out + "\n")


if __name__ == "__main__":
    main()
