"""JWT bearer tokens against a real JWKS: keys generated per run, served over loopback HTTP
by tests/identity_provider.py (the identity provider itself, not a Dapr stand-in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from jobrelay.auth import Authenticator, AuthSettings, check_bind
from jobrelay.contract.credentials import hash_key, new_key
from jobrelay.errors import ApiError
from jobrelay.oidc import TokenVerifier, looks_like_jwt
from tests.identity_provider import AUDIENCE, ISSUER, IdentityProvider, rsa_key
from tests.ports import free_port


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider().start()
    yield provider
    provider.stop()


def _settings(jwks_url: str, **overrides: Any) -> AuthSettings:
    fields: dict[str, Any] = {
        "jwks_url": jwks_url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwks_refresh_cooldown_seconds": 0,
        "jwks_timeout_seconds": 2,
        **overrides,
    }
    return AuthSettings(**fields)


def _verifier(idp: IdentityProvider, **overrides: Any) -> TokenVerifier:
    verifier = _settings(idp.jwks_url, **overrides).token_verifier()
    assert verifier is not None
    return verifier


def _refusal(verifier: TokenVerifier, token: str) -> ApiError:
    with pytest.raises(ApiError) as refused:
        verifier.tenant_for(token)
    return refused.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """A token built by hand: PyJWT rightly refuses to make these, an attacker would not."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    if header["alg"] == "none":
        return head + "."
    return head + "." + _b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


def test_a_good_token_names_its_tenant(idp: IdentityProvider) -> None:
    verifier = _verifier(idp)
    assert verifier.tenant_for(idp.token("tenant-a")) == "tenant-a"
    assert verifier.tenant_for(idp.token("tenant-b", kid="e1")) == "tenant-b"  # ES256
    assert idp.fetches == 1  # the key set is cached


def test_the_tenant_claim_is_configurable(idp: IdentityProvider) -> None:
    verifier = _verifier(idp, jwt_tenant_claim="org_id")
    assert verifier.tenant_for(idp.token(None, org_id="globex")) == "globex"


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"aud": "another-api"}, "invalid_token"),
        ({"iss": "https://evil.example/"}, "invalid_token"),
        ({"lifetime": -120}, "token_expired"),  # past the 30 s leeway
        ({"nbf": 4_000_000_000}, "invalid_token"),  # not yet valid
        ({"exp": None}, "invalid_token"),  # a token that never expires is refused
        ({"aud": None}, "invalid_token"),
        ({"tenant": None}, "invalid_token"),
        ({"tenant": ""}, "invalid_token"),
        ({"tenant": ["a", "b"]}, "invalid_token"),
    ],
)
def test_a_token_failing_a_claim_check_is_401(
    idp: IdentityProvider, claims: dict[str, Any], code: str
) -> None:
    claims = dict(claims)  # parametrize shares the dict between runs: never mutate it
    tenant = claims.pop("tenant", "tenant-a")
    refused = _refusal(_verifier(idp), idp.token(tenant, **claims))
    assert (refused.status, refused.code) == (401, code)
    assert refused.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def test_an_expiry_within_the_leeway_is_accepted(idp: IdentityProvider) -> None:
    assert _verifier(idp).tenant_for(idp.token(lifetime=-5)) == "tenant-a"


def test_a_token_signed_by_another_key_under_a_known_kid_is_401(idp: IdentityProvider) -> None:
    forged = idp.token(kid="k1", key=rsa_key())
    refused = _refusal(_verifier(idp), forged)
    assert (refused.status, refused.code) == (401, "invalid_token")
    assert "Signature verification failed" in refused.message


def test_a_tampered_payload_is_401(idp: IdentityProvider) -> None:
    head, _, sig = idp.token("tenant-a").split(".")
    other = _b64(json.dumps({"tenant": "tenant-b", "iss": ISSUER, "aud": AUDIENCE}).encode())
    assert _refusal(_verifier(idp), f"{head}.{other}.{sig}").status == 401


def test_an_unknown_kid_is_401_after_one_refetch(idp: IdentityProvider) -> None:
    verifier = _verifier(idp)
    verifier.tenant_for(idp.token())
    refused = _refusal(verifier, idp.token(kid="nobody", key=rsa_key()))
    assert (refused.status, refused.code) == (401, "invalid_token")
    assert idp.fetches == 2  # looked again, in case the key was new


def test_a_rotated_key_is_fetched_when_its_kid_first_appears(idp: IdentityProvider) -> None:
    verifier = _verifier(idp)
    verifier.tenant_for(idp.token())
    idp.keys["k2"] = rsa_key()  # the provider rotates after jobrelay cached its keys
    assert verifier.tenant_for(idp.token("tenant-b", kid="k2")) == "tenant-b"


def test_unknown_kids_refetch_at_most_once_per_cooldown(idp: IdentityProvider) -> None:
    verifier = _verifier(idp, jwks_refresh_cooldown_seconds=60)
    verifier.tenant_for(idp.token())
    for n in range(20):
        _refusal(verifier, idp.token(kid=f"forged-{n}", key=rsa_key()))
    assert idp.fetches == 1  # a storm of made-up kids is not a storm of fetches


def test_alg_none_and_hs256_are_refused_without_a_fetch(idp: IdentityProvider) -> None:
    verifier = _verifier(idp)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": 4_000_000_000, "tenant": "tenant-a"}
    # HS256 keyed with the provider's *public* key, which anyone can read from the JWKS.
    public_pem = (
        idp.keys["k1"].public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    for alg in ("none", "HS256"):
        token = _unsigned({"alg": alg, "typ": "JWT", "kid": "k1"}, claims, public_pem)
        refused = _refusal(verifier, token)
        assert (refused.status, refused.code) == (401, "invalid_token"), alg
    assert idp.fetches == 0


def test_a_token_of_an_algorithm_not_allowed_is_refused(idp: IdentityProvider) -> None:
    verifier = _verifier(idp, jwt_algorithms=["RS256"])
    assert _refusal(verifier, idp.token(kid="e1")).code == "invalid_token"


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"]])
def test_symmetric_or_no_algorithms_cannot_be_configured(algorithms: list[str]) -> None:
    with pytest.raises(ValidationError, match="refused"):
        _settings("https://idp.example/jwks", jwt_algorithms=algorithms)


@pytest.mark.parametrize("missing", ["jwt_issuer", "jwt_audience"])
def test_a_jwks_without_issuer_or_audience_is_refused(missing: str) -> None:
    with pytest.raises(ValidationError, match="JWT_ISSUER and JWT_AUDIENCE"):
        _settings("https://idp.example/jwks", **{missing: None})


def test_a_jwks_over_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(ValidationError, match="must be https"):
        _settings("http://idp.example/jwks")
    _settings("http://127.0.0.1:1/jwks")


def test_an_unreachable_jwks_is_503_not_a_crash() -> None:
    verifier = _settings(f"http://127.0.0.1:{free_port()}/jwks").token_verifier()
    assert verifier is not None
    refused = _refusal(verifier, IdentityProvider().token())
    assert (refused.status, refused.code) == (503, "identity_provider_unavailable")
    assert refused.headers is not None
    assert "Retry-After" in refused.headers


def test_a_jwks_answering_garbage_is_503(idp: IdentityProvider) -> None:
    idp.broken = True
    refused = _refusal(_verifier(idp), idp.token())
    assert (refused.status, refused.code) == (503, "identity_provider_unavailable")


def test_malformed_bearers_are_401(idp: IdentityProvider) -> None:
    verifier = _verifier(idp)
    for token in ("a.b.c", "..", "eyJhbGciOiJSUzI1NiJ9.e30.", idp.token()[:-10] + "."):
        assert _refusal(verifier, token).status == 401, token


def test_api_keys_keep_working_beside_jwts(idp: IdentityProvider) -> None:
    key = new_key()
    auth = Authenticator({hash_key(key): "acme"}, _verifier(idp))
    assert not looks_like_jwt(key)
    assert auth.tenant_for(key) == "acme"
    assert auth.tenant_for(idp.token("globex")) == "globex"
    with pytest.raises(ApiError) as refused:
        auth.tenant_for("jr_unknown")
    assert refused.value.code == "unauthorized"


def test_jwt_only_authentication_refuses_api_keys(idp: IdentityProvider) -> None:
    auth = Authenticator({}, _verifier(idp))
    with pytest.raises(ApiError):
        auth.tenant_for(new_key())
    with pytest.raises(ApiError):
        auth.tenant_for(None)


def test_a_jwt_is_just_an_unknown_key_when_jwt_is_off(idp: IdentityProvider) -> None:
    auth = Authenticator({hash_key(new_key()): "acme"})
    with pytest.raises(ApiError) as refused:
        auth.tenant_for(idp.token())
    assert refused.value.code == "unauthorized"


def test_jwt_alone_counts_as_authentication_for_the_bind_check() -> None:
    check_bind("0.0.0.0", _settings("https://idp.example/jwks"))  # noqa: S104
