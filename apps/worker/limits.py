"""Per-profile limits shared by every worker replica, kept in the Dapr state store.

- Concurrency: a slot table per profile (`limit:{profile}:slots`), holders added and removed
  with ETag-guarded writes; each holder carries an expiry, so a worker that dies holding a
  slot frees it after the call's timeout instead of shrinking the pool for good.
- Rate: a counter per profile and minute (`limit:{profile}:{minute}`, requests and tokens),
  incremented with ETag-guarded writes; over the limit, a call waits for the next minute.

Both wait at most until the job's deadline. A Dapr-backed table costs two or three state
calls per model call: milliseconds against model calls of seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from dapr.aio.clients import DaprClient

from apps.worker.profiles import ModelProfile
from jobrelay.constants import STATESTORE
from jobrelay.store import swap

log = logging.getLogger(__name__)

_POLL_SECONDS = (0.02, 0.1)  # a waiting call looks again after a random pause in this range
_GRACE_SECONDS = 10.0  # a slot outlives its call's timeout by this before others may take it


class LimitWait(Exception):
    """The limit did not free up before the job's deadline."""


class SharedLimits:
    def __init__(self, dapr: DaprClient, store: str = STATESTORE) -> None:
        self._dapr = dapr
        self._store = store

    @asynccontextmanager
    async def slot(self, profile: ModelProfile, deadline: datetime | None) -> AsyncIterator[None]:
        """Hold one of the profile's `max_concurrency` slots while the block runs."""
        if profile.max_concurrency is None:
            yield
            return
        key = f"limit:{profile.name}:slots"
        holder = uuid.uuid4().hex
        lease = profile.timeout_seconds + _GRACE_SECONDS
        await self._update(
            key, deadline, lambda slots: _take(slots, holder, lease, profile.max_concurrency or 0)
        )
        try:
            yield
        finally:
            await self._update(key, None, lambda slots: _release(slots, holder))

    async def admit(self, profile: ModelProfile, tokens: int, deadline: datetime | None) -> None:
        """Count one request of about `tokens` tokens against the profile's per-minute limits."""
        rpm, tpm = profile.requests_per_minute, profile.tokens_per_minute
        if rpm is None and tpm is None:
            return
        while True:
            minute = int(time.time() // 60)
            key = f"limit:{profile.name}:{minute}"

            def count(window: dict[str, Any]) -> dict[str, Any] | None:
                requests, used = window.get("requests", 0), window.get("tokens", 0)
                if (rpm is not None and requests + 1 > rpm) or (
                    tpm is not None and used + tokens > tpm and used > 0
                ):
                    return None
                return {"requests": requests + 1, "tokens": used + tokens}

            try:
                await self._update(key, None, count, ttl=120, wait=False)
                return
            except LimitWait:
                next_minute = (minute + 1) * 60
                if deadline is not None and next_minute >= deadline.timestamp():
                    raise LimitWait(
                        f"{profile.name}: rate limit until after the deadline"
                    ) from None
                log.info(
                    "profile=%s rate limit reached; waiting %.1f s",
                    profile.name,
                    next_minute - time.time(),
                )
                await asyncio.sleep(max(next_minute - time.time(), 0.0))

    async def _update(
        self, key: str, deadline: datetime | None, change: Any, ttl: int = -1, wait: bool = True
    ) -> None:
        """Apply `change` (current value -> new value, or None for "not now") under ETags,
        waiting for room until `deadline` (or raising LimitWait at once when not `wait`)."""
        while True:
            resp = await self._dapr.get_state(self._store, key)
            current = json.loads(resp.data) if resp.data else {}
            new = change(current)
            if new is None:
                if not wait:
                    raise LimitWait(key)
                if deadline is not None and time.time() >= deadline.timestamp():
                    raise LimitWait(f"{key}: no free slot before the deadline")
                await asyncio.sleep(random.uniform(*_POLL_SECONDS))  # noqa: S311
                continue
            if await self._write(key, new, resp.etag if resp.data else None, ttl):
                return

    async def _write(self, key: str, value: dict[str, Any], etag: str | None, ttl: int) -> bool:
        """False if another replica wrote first (then the caller rereads)."""
        return await swap(self._dapr, self._store, key, json.dumps(value), etag, ttl)


def _take(slots: dict[str, float], holder: str, lease: float, limit: int) -> dict[str, Any] | None:
    now = time.time()
    live = {h: until for h, until in slots.items() if until > now}
    if len(live) >= limit:
        return None
    return {**live, holder: now + lease}


def _release(slots: dict[str, float], holder: str) -> dict[str, Any]:
    return {h: until for h, until in slots.items() if h != holder}
