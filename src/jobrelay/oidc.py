"""OIDC/JWT bearer tokens: validated against the identity provider's JWKS, mapped to a tenant
by one claim. Beside API keys (jobrelay.auth), never instead of them.

PyJWT does the cryptography and the claim checks; this module decides the policy:

- Asymmetric algorithms only. A JWKS publishes public keys; accepting `HS*` would let anyone
  who reads the JWKS sign a token with it (the classic key-confusion attack), and `none`
  needs no key at all. The header's `alg` is checked before any key is looked up, so such a
  token costs no fetch.
- `exp`, `iss` and `aud` are required. Without `aud` a token minted for another service at
  the same provider would be accepted here; without `exp` a leaked token would work forever.
- The tenant comes from one configured claim and nowhere else; a token without it is refused
  rather than mapped to some default tenant.
- Keys are cached (PyJWKClient): the JWKS is fetched when the cache is cold or expired, and
  again for an unknown `kid` (a rotated key), at most once per cooldown so a stream of forged
  `kid`s cannot turn into a stream of fetches.

PyJWKClient fetches with urllib, which blocks: `verify` is called from a sync dependency,
which FastAPI runs in its thread pool, never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import jwt
from jwt import PyJWKClient

from jobrelay.constants import RETRY_AFTER_SECONDS
from jobrelay.errors import ApiError

log = logging.getLogger(__name__)

# What a JWKS can verify: public-key signatures only.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def looks_like_jwt(credential: str) -> bool:
    """A compact JWS has three dot-separated parts; an API key (`jr_` + base64url) has no dot,
    so the two can never be mistaken for each other."""
    return credential.count(".") == 2


def _refused(message: str, code: str = "invalid_token") -> ApiError:
    return ApiError(401, code, message, _CHALLENGE)


class TokenVerifier:
    """Validates a bearer JWT and answers its tenant, or raises ApiError (401 or 503)."""

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        tenant_claim: str,
        algorithms: Sequence[str],
        leeway_seconds: float,
        cache_seconds: float,
        refresh_cooldown_seconds: float,
        timeout_seconds: float,
    ) -> None:
        unsafe = set(algorithms) - ASYMMETRIC_ALGORITHMS
        if unsafe or not algorithms:
            # AuthSettings refuses these already; checked again because a wrong list here
            # would be an authentication bypass, not a misconfiguration.
            raise ValueError(f"only asymmetric JWT algorithms may be allowed, not {unsafe}")
        self._issuer = issuer
        self._audience = audience
        self._tenant_claim = tenant_claim
        self._algorithms = list(algorithms)
        self._leeway = leeway_seconds
        self._jwks = PyJWKClient(
            jwks_url,
            cache_keys=False,  # its LRU never expires: a revoked key would stay trusted
            lifespan=cache_seconds,
            cooldown_duration=refresh_cooldown_seconds,
            timeout=timeout_seconds,
        )

    def tenant_for(self, token: str) -> str:
        header = self._header(token)
        key = self._signing_key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _refused("the bearer token has expired", "token_expired") from exc
        except jwt.InvalidTokenError as exc:
            raise _refused(f"invalid bearer token: {exc}") from exc
        tenant = claims.get(self._tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise _refused(f"the bearer token has no {self._tenant_claim!r} claim naming a tenant")
        return tenant

    def _header(self, token: str) -> dict[str, object]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise _refused(f"invalid bearer token: {exc}") from exc
        if header.get("alg") not in self._algorithms:
            raise _refused(f"token algorithm {header.get('alg')!r} is not accepted")
        return header

    def _signing_key(self, kid: object) -> jwt.PyJWK:
        if not isinstance(kid, str) or not kid:
            raise _refused("the bearer token names no signing key (kid)")
        try:
            return self._jwks.get_signing_key(kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, ValueError) as exc:
            # Unreachable, or answering something that is not a key set (ValueError: not
            # JSON): the token may be fine, we cannot tell. 503, so clients retry, not re-login.
            log.warning("JWKS unavailable: %s", exc)
            raise ApiError(
                503,
                "identity_provider_unavailable",
                "the identity provider's signing keys cannot be fetched right now; try again "
                "shortly",
                {"Retry-After": str(RETRY_AFTER_SECONDS * 5)},
            ) from exc
        except jwt.PyJWKClientError as exc:
            # Even after a refresh, no key of that id: signed by someone else (or by a key
            # the provider has retired).
            raise _refused(f"no signing key {kid!r} at the identity provider") from exc
