"""Client authentication: API keys mapped to tenants, read through a Dapr secret store, and
optionally OIDC/JWT bearer tokens validated against a JWKS (jobrelay.oidc).

Only hashes of keys are stored (jobrelay.contract.credentials: their format, shared with
`jobrelay admin new-key`).

The secret (named by `JOBRELAY_AUTH_SECRET_NAME`, in the Dapr secret store named by
`JOBRELAY_AUTH_SECRET_STORE`) holds a JSON object `{"<sha256 hex of key>": "<tenant>"}`. A
store that answers several values for one secret (Kubernetes, Key Vault) may split the
object across them: all are merged.

With `JOBRELAY_AUTH_JWKS_URL` set, a bearer that looks like a JWT is validated as one and its
tenant claim names the tenant; anything else is still looked up as an API key.

With neither a secret store nor a JWKS, authentication is off and every caller is the
`default` tenant. That is allowed on loopback only, with a warning at start-up; `check_bind`
refuses any other address, so a server reachable from the network never runs without it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from typing import Annotated, Self
from urllib.parse import urlsplit

import anyio
from dapr.aio.clients import DaprClient
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobrelay.contract.credentials import hash_key
from jobrelay.errors import DAPR_ERRORS, ApiError
from jobrelay.oidc import ASYMMETRIC_ALGORITHMS, TokenVerifier, looks_like_jwt
from jobrelay.webhook_secrets import merged_objects

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBRELAY_AUTH_", extra="ignore", frozen=True)

    secret_store: str | None = Field(
        default=None,
        description="Dapr secret store holding the API key hashes; unset = authentication off "
        "(loopback only).",
    )
    secret_name: str = Field(default="API_KEYS", description="The secret in that store.")
    keys_refresh_seconds: float = Field(
        default=30,
        gt=0,
        description="How often the API key table is re-read: a revoked key stops working "
        "within this, in every replica, with no restart.",
    )
    jwks_url: str | None = Field(
        default=None,
        description="The identity provider's JWKS (https; http on loopback only); set = "
        "OIDC/JWT bearer tokens are accepted beside API keys.",
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of tokens.")
    jwt_audience: str | None = Field(
        default=None, description="Required `aud` of tokens: this API's identifier at the IdP."
    )
    jwt_tenant_claim: str = Field(
        default="tenant", min_length=1, description="The claim that names the caller's tenant."
    )
    jwt_algorithms: list[str] = Field(
        default=["RS256", "ES256"], min_length=1, description="Accepted `alg`s (asymmetric)."
    )
    jwt_leeway_seconds: float = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on exp and nbf."
    )
    jwks_cache_seconds: float = Field(default=300, gt=0, description="JWKS kept this long.")
    jwks_refresh_cooldown_seconds: float = Field(
        default=30, ge=0, description="At most one refetch per this for an unknown `kid`."
    )
    jwks_timeout_seconds: float = Field(default=5, gt=0, description="Per JWKS fetch.")

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        refused = set(algorithms) - ASYMMETRIC_ALGORITHMS
        if refused:
            raise ValueError(
                f"{sorted(refused)} refused: only {sorted(ASYMMETRIC_ALGORITHMS)} can be "
                "verified with a JWKS's public keys ('none' and HS* never)"
            )
        return algorithms

    @model_validator(mode="after")
    def _jwt_complete(self) -> Self:
        if self.jwks_url is None:
            return self
        if self.jwt_issuer is None or self.jwt_audience is None:
            # Either missing would accept tokens minted by or for someone else.
            raise ValueError("JOBRELAY_AUTH_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE too")
        url = urlsplit(self.jwks_url)
        # Keys fetched over plain HTTP can be swapped in transit, and whoever swaps them can
        # sign tokens for any tenant.
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.hostname or "")):
            raise ValueError("JOBRELAY_AUTH_JWKS_URL must be https (http only on loopback)")
        return self

    @property
    def enabled(self) -> bool:
        return self.secret_store is not None or self.jwks_url is not None

    def token_verifier(self) -> TokenVerifier | None:
        if self.jwks_url is None or self.jwt_issuer is None or self.jwt_audience is None:
            return None
        return TokenVerifier(
            self.jwks_url,
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            tenant_claim=self.jwt_tenant_claim,
            algorithms=self.jwt_algorithms,
            leeway_seconds=self.jwt_leeway_seconds,
            cache_seconds=self.jwks_cache_seconds,
            refresh_cooldown_seconds=self.jwks_refresh_cooldown_seconds,
            timeout_seconds=self.jwks_timeout_seconds,
        )


class AuthNotConfigured(SystemExit):
    """Start-up refused: the app would be reachable without authentication."""


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
    if not settings.enabled and not is_loopback(host):
        raise AuthNotConfigured(
            f"refusing to bind {host} without authentication: set JOBRELAY_AUTH_SECRET_STORE "
            "or JOBRELAY_AUTH_JWKS_URL (docs/security.md), or bind 127.0.0.1"
        )


@dataclass
class Authenticator:
    """`tenants` maps key hashes to tenants, `tokens` validates JWTs; both None means
    authentication is off. `tenants` is replaced whole by `keep_keys_fresh` (never changed
    in place), so a request always sees one table or the other."""

    tenants: dict[str, str] | None
    tokens: TokenVerifier | None = None

    @property
    def enabled(self) -> bool:
        return self.tenants is not None or self.tokens is not None

    def tenant_for(self, key: str | None) -> str:
        if not self.enabled:
            return DEFAULT_TENANT
        if key and self.tokens is not None and looks_like_jwt(key):
            return self.tokens.tenant_for(key)
        tenant = self.tenants.get(hash_key(key)) if key and self.tenants else None
        if tenant is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer <key>)",
                {"WWW-Authenticate": "Bearer"},
            )
        return tenant


def parse_key_table(values: dict[str, str]) -> dict[str, str]:
    """key hash -> tenant from the secret's values (the format: module docstring)."""
    table = merged_objects(values, "API key secret (hash -> tenant)")
    if not all(isinstance(tenant, str) and tenant for tenant in table.values()):
        raise ValueError("the API key secret must be a JSON object of hash -> tenant")
    return {key: str(tenant) for key, tenant in table.items()}


async def _read_keys(dapr: DaprClient, settings: AuthSettings) -> dict[str, str]:
    assert settings.secret_store is not None
    secret = await dapr.get_secret(settings.secret_store, settings.secret_name)
    return parse_key_table(dict(secret.secret))


async def keep_keys_fresh(
    dapr: DaprClient, authenticator: Authenticator, settings: AuthSettings | None = None
) -> None:
    """Re-read the key table every `keys_refresh_seconds`, for the app's life: a key
    removed from the secret stops working then. A store that cannot be read, or a table that
    does not parse, keeps the last table (and says so in the log): an outage of the secret
    store must not lock every client out."""
    settings = settings or AuthSettings()
    if settings.secret_store is None or authenticator.tenants is None:
        return
    while True:
        await asyncio.sleep(settings.keys_refresh_seconds)
        await refresh_keys(dapr, authenticator, settings)


async def refresh_keys(
    dapr: DaprClient, authenticator: Authenticator, settings: AuthSettings
) -> None:
    try:
        table = await _read_keys(dapr, settings)
    except DAPR_ERRORS as exc:
        log.warning("API keys not re-read, the last ones stay in use: %s", exc)
        return
    except ValueError as exc:
        log.error("API key table malformed, the last one stays in use: %s", exc)
        return
    if table != authenticator.tenants:
        log.info("API keys re-read: %d keys, %d tenants", len(table), len(set(table.values())))
    authenticator.tenants = table


async def load(dapr: DaprClient, settings: AuthSettings | None = None) -> Authenticator:
    """The key table from the secret store, and the JWT verifier if configured. Start-up fails
    if API keys are the only way in and there are none, so a typo in the secret's name cannot
    silently lock every client out (or let them in)."""
    settings = settings or AuthSettings()
    tokens = settings.token_verifier()
    if not settings.enabled:
        log.warning(
            "AUTHENTICATION IS OFF: every caller is tenant %r. Loopback only; set "
            "JOBRELAY_AUTH_SECRET_STORE or JOBRELAY_AUTH_JWKS_URL before exposing this service "
            "(docs/security.md).",
            DEFAULT_TENANT,
        )
        return Authenticator(None)
    table: dict[str, str] = {}
    if settings.secret_store is not None:
        table = await _read_keys(dapr, settings)
        if not table and tokens is None:
            raise AuthNotConfigured(
                f"secret {settings.secret_name!r} in store {settings.secret_store!r} holds no keys"
            )
    log.info(
        "authentication on: %d API keys, %d tenants; JWT bearer tokens %s",
        len(table),
        len(set(table.values())),
        f"from {settings.jwks_url}" if tokens else "off",
    )
    return Authenticator(table, tokens)


# auto_error=False: a missing header is answered by Authenticator with the API's own error
# shape (and not at all while authentication is off).
_bearer = HTTPBearer(
    auto_error=False,
    description="An API key, or (where the server is configured for it) an OIDC access token "
    "(JWT): `Authorization: Bearer <key or token>`.",
)


async def current_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    authenticator = getattr(request.app, "authenticator", None)
    assert isinstance(authenticator, Authenticator), "an app that answers clients loads one"
    key = credentials.credentials if credentials else None
    if key and authenticator.tokens is not None and looks_like_jwt(key):
        # In a worker thread: a JWKS fetch (blocking urllib, jobrelay.oidc) may wait there
        # without stalling the event loop. Only for tokens: an API key is a dictionary
        # lookup, which a thread hop per request would cost many times over.
        return await anyio.to_thread.run_sync(authenticator.tenant_for, key)
    return authenticator.tenant_for(key)


TenantDep = Annotated[str, Depends(current_tenant)]
