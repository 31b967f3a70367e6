"""Webhook deliveries run beside the event handler, in lanes: so many at a time per tenant and
per target.

A delivery may take minutes (several tries, each up to the webhook timeout, with backoff in
between). Run inside the `job-events` handler, as it was, a tenant pointing many webhooks at
an address that never answers held the broker's few concurrent deliveries, and every
tenant's webhooks waited behind them. Here the handler only submits the delivery and
returns; the delivery runs as a task that holds a slot of its tenant's lane and one of its
target's (scheme, host and port) only while it is sending, never while it sleeps before a
retry. One tenant can then keep at most `per_tenant` requests in flight, and one receiver
gets at most `per_target`, whoever sends them.

The queue is in memory: a delivery still waiting when its status replica stops is lost (and
logged). Each tenant's backlog is bounded, so a flood of events cannot grow it without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class _Lane:
    slots: asyncio.Semaphore
    users: int = 0  # tasks holding or waiting for a slot; the lane is dropped at 0


@dataclass
class _Lanes:
    width: int
    lanes: dict[str, _Lane] = field(default_factory=dict)

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = _Lane(asyncio.Semaphore(self.width))
        lane.users += 1
        try:
            async with lane.slots:
                yield
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self.lanes[key]


class DeliveryLanes:
    def __init__(self, per_tenant: int, per_target: int, backlog_per_tenant: int) -> None:
        self._tenants = _Lanes(per_tenant)
        self._targets = _Lanes(per_target)
        self._backlog = backlog_per_tenant
        self._waiting: Counter[str] = Counter()  # per tenant: deliveries not finished
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(
        self, tenant: str, delivery: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[None] | None:
        """`delivery` started as a task; None (and nothing started) if the tenant's backlog is
        full."""
        if self._waiting[tenant] >= self._backlog:
            return None
        self._waiting[tenant] += 1
        task = asyncio.create_task(self._run(tenant, delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, tenant: str, delivery: Callable[[], Awaitable[None]]) -> None:
        try:
            await delivery()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A delivery records its own failures; anything else is a bug, logged here since
            # no one awaits the task.
            log.exception("webhook delivery failed unexpectedly")
        finally:
            self._waiting[tenant] -= 1
            if self._waiting[tenant] <= 0:
                del self._waiting[tenant]

    @asynccontextmanager
    async def slot(self, tenant: str, target: str) -> AsyncIterator[None]:
        """Hold a slot of the tenant's lane, then of the target's, for one try."""
        async with self._tenants.slot(tenant), self._targets.slot(target):
            yield

    def waiting(self, tenant: str) -> int:
        return self._waiting[tenant]

    async def close(self) -> None:
        """Cancel what is still waiting or sending (a stopping replica)."""
        if self._tasks:
            log.warning("%d webhook deliveries cancelled at shutdown", len(self._tasks))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
