"""jobrelay.auth without a sidecar: the key table, the tenant lookup, the bind check."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from dapr.clients.exceptions import DaprInternalError

from jobrelay.auth import (
    DEFAULT_TENANT,
    Authenticator,
    AuthNotConfigured,
    AuthSettings,
    check_bind,
    keep_keys_fresh,
    load,
    parse_key_table,
)
from jobrelay.contract.credentials import hash_key, new_key
from jobrelay.errors import ApiError


def test_a_key_maps_to_its_tenant_through_its_hash_only() -> None:
    key = new_key()
    auth = Authenticator({hash_key(key): "acme"})
    assert auth.tenant_for(key) == "acme"
    assert key not in json.dumps(auth.tenants)


@pytest.mark.parametrize("key", [None, "", "jr_unknown"])
def test_a_missing_or_unknown_key_is_401(key: str | None) -> None:
    auth = Authenticator({hash_key(new_key()): "acme"})
    with pytest.raises(ApiError) as refused:
        auth.tenant_for(key)
    assert refused.value.status == 401


def test_with_authentication_off_every_caller_is_the_default_tenant() -> None:
    assert Authenticator(None).tenant_for(None) == DEFAULT_TENANT


def test_new_keys_are_long_and_distinct() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("jr_") and len(k) > 40 for k in keys)


def test_the_key_table_merges_every_value_of_the_secret() -> None:
    table = parse_key_table({"a": json.dumps({"h1": "t1"}), "b": json.dumps({"h2": "t2"})})
    assert table == {"h1": "t1", "h2": "t2"}
    assert parse_key_table({"API_KEYS": ""}) == {}


def test_a_malformed_key_table_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse_key_table({"API_KEYS": json.dumps({"h1": ""})})


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.com"])  # noqa: S104
def test_a_non_loopback_bind_without_authentication_refuses_to_start(host: str) -> None:
    with pytest.raises(AuthNotConfigured):
        check_bind(host, AuthSettings(secret_store=None))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_may_run_without_authentication(host: str) -> None:
    check_bind(host, AuthSettings(secret_store=None))


def test_any_bind_is_allowed_with_authentication() -> None:
    store = AuthSettings(secret_store="jobrelay-secrets")  # noqa: S106 (a component name)
    check_bind("0.0.0.0", store)  # noqa: S104


class FakeSecretStore:
    """FAKE Dapr client: the key table it serves is whatever the test sets, and it can go
    down."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.down = False

    async def get_secret(self, store: str, key: str) -> Any:
        if self.down:
            raise DaprInternalError("secret store unreachable")
        return type("Secret", (), {"secret": {key: json.dumps(self.table)}})()


@pytest.mark.anyio
async def test_a_revoked_key_stops_working_without_a_restart() -> None:
    kept, revoked = new_key(), new_key()
    store = FakeSecretStore({hash_key(kept): "acme", hash_key(revoked): "acme"})
    settings = AuthSettings(secret_store="jobrelay-secrets", keys_refresh_seconds=0.05)  # noqa: S106
    auth = await load(cast(Any, store), settings)
    assert auth.tenant_for(revoked) == "acme"
    refreshing = asyncio.create_task(keep_keys_fresh(cast(Any, store), auth, settings))
    try:
        store.table = {hash_key(kept): "acme"}  # the operator removes the key
        await asyncio.sleep(0.3)
        with pytest.raises(ApiError):
            auth.tenant_for(revoked)
        assert auth.tenant_for(kept) == "acme"
        store.down = True  # an outage keeps the last table rather than locking everyone out
        await asyncio.sleep(0.2)
        assert auth.tenant_for(kept) == "acme"
    finally:
        refreshing.cancel()
