"""Which secret signs a tenant's webhooks.

With authentication on, each tenant has its own secret, read through the Dapr secret store
(`WEBHOOK_SECRETS`, jobrelay.webhook_secrets): a receiver that verifies with its secret knows
the delivery came from jobrelay *for its tenant*. One secret shared by every tenant would let
any tenant, who must be able to read that secret to verify, forge deliveries to another's
receiver. So the single `JOBRELAY_STATUS_WEBHOOK_SECRET` signs only while authentication is
off, where every caller is the one tenant `default` (a local first run); with it on, a tenant
without its own secret gets no webhooks, and each attempt says why on the job.

The table is re-read at most every `webhook_secrets_refresh_seconds`, so a new or rotated
secret takes effect without a restart (with stores that see changes: Kubernetes, vaults). A
store that cannot be read keeps the last table in use.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dapr.aio.clients import DaprClient

from apps.status.settings import StatusSettings
from jobrelay import webhook_secrets
from jobrelay.auth import AuthSettings
from jobrelay.errors import DAPR_ERRORS

log = logging.getLogger(__name__)


class SigningSecrets:
    def __init__(
        self,
        dapr: DaprClient,
        settings: StatusSettings,
        auth: AuthSettings,
    ) -> None:
        self._dapr = dapr
        self._name = settings.webhook_secrets_name
        self._refresh_seconds = settings.webhook_secrets_refresh_seconds
        self._authenticated = auth.enabled
        self._store = auth.secret_store
        fallback = settings.webhook_secret
        self._fallback = fallback.get_secret_value() if fallback else None
        self._table: dict[str, str] | None = None
        self._read_at = 0.0  # monotonic time of the last read attempt
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """First read, and one log line saying how webhooks will be signed. A malformed table
        stops start-up (an operator's mistake, better seen at once); an unreachable store
        does not: the next delivery tries again."""
        if not self._authenticated:
            if self._fallback is None:
                log.warning("JOBRELAY_STATUS_WEBHOOK_SECRET is not set: webhooks will not be sent")
            return
        if self._fallback is not None:
            log.warning(
                "JOBRELAY_STATUS_WEBHOOK_SECRET is ignored with authentication on: webhooks "
                "are signed with each tenant's own secret (%s)",
                self._name,
            )
        if self._store is None:
            log.warning(
                "no JOBRELAY_AUTH_SECRET_STORE: no tenant has a webhook secret, so no "
                "webhooks will be sent"
            )
            return
        try:
            await self._read()
        except DAPR_ERRORS as exc:
            log.warning("webhook secrets not readable yet (%s); retried on first use", exc)
            return
        log.info("webhook signing secrets for %d tenants", len(self._table or {}))

    async def for_tenant(self, tenant: str) -> str | None:
        """The tenant's secret; None if it has none. Raises a Dapr error only if the store has
        never been readable."""
        if not self._authenticated:
            return self._fallback
        if self._store is None:
            return None
        if time.monotonic() - self._read_at >= self._refresh_seconds:
            await self._refresh()
        return (self._table or {}).get(tenant)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < self._refresh_seconds:
                return  # another caller refreshed while this one waited
            try:
                await self._read()
            except DAPR_ERRORS as exc:
                if self._table is None:
                    raise
                log.warning("webhook secrets not re-read, the last ones stay in use: %s", exc)
            except ValueError as exc:
                log.error("webhook secrets malformed, the last ones stay in use: %s", exc)

    async def _read(self) -> None:
        assert self._store is not None
        self._read_at = time.monotonic()
        secret = await self._dapr.get_secret(self._store, self._name)
        self._table = webhook_secrets.parse_table(dict(secret.secret))
