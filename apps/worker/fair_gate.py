"""The worker's own in-flight limit (JOBRELAY_WORKER_MAX_INFLIGHT), served in a fair order.

Deliveries reach the worker faster than the model serves them (the sidecar hands over up
to appMaxConcurrency at once), so some always wait here for a call of their own. Who goes
next decides how long a job waits behind others already in the worker, and a plain FIFO
semaphore would make a tenant's single job wait behind every delivery of another tenant's
backlog that arrived first. Here the next call is chosen by:

1. priority: every waiting `high` call before any `normal`, every `normal` before any `low`;
2. among tenants of one priority, start-time fair queuing: each tenant's calls get start
   tags that advance by 1/weight per call from the later of the tenant's last tag and the
   tag now in service, so a tenant that had nothing waiting goes next, and tenants with
   backlogs alternate in proportion to their weights (JOBRELAY_WORKER_TENANT_WEIGHTS);
3. within a tenant, first come first served.

Only the wait for a call is reordered: deliveries still read, claim and write without
holding a call (apps/worker/runner.py), and the shared per-profile slots behind this gate
(apps/worker/slots.py) are taken as before.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from jobrelay.contract import Priority

# Tenants' last tags are forgotten once they fall behind virtual time (they would start from
# it anyway); checked when this many are kept, so an idle tenant costs nothing for long.
_PRUNE_AT = 1024


@dataclass(frozen=True, slots=True)
class Turn:
    """Whose model call waits: the job's priority and tenant."""

    priority: Priority = Priority.NORMAL
    tenant: str = "default"


@dataclass(order=True)
class _Waiter:
    rank: int
    start: float
    seq: int
    admitted: asyncio.Future[None] = field(compare=False)


@dataclass
class _Clock:
    """Start-time fair queuing state of one priority."""

    virtual: float = 0.0  # the start tag of the call last let in
    finish: dict[str, float] = field(default_factory=dict)  # each tenant's last finish tag


class FairGate:
    def __init__(self, capacity: int, weights: Mapping[str, float] | None = None) -> None:
        self._free = capacity
        self._weights = dict(weights or {})
        self._waiting: list[_Waiter] = []  # a heap: the next call first
        self._clocks = {p: _Clock() for p in Priority}
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiting if not w.admitted.done())

    @asynccontextmanager
    async def admitted(self, turn: Turn) -> AsyncIterator[None]:
        """Hold one of the gate's calls for the block, once it is `turn`'s turn."""
        await self._enter(turn)
        try:
            yield
        finally:
            self._leave()

    async def _enter(self, turn: Turn) -> None:
        clock = self._clocks[turn.priority]
        start = max(clock.virtual, clock.finish.get(turn.tenant, 0.0))
        clock.finish[turn.tenant] = start + 1.0 / self._weight(turn.tenant)
        if self._free > 0 and not self._waiting:
            self._free -= 1
            clock.virtual = max(clock.virtual, start)
            return
        admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, _Waiter(turn.priority.rank, start, next(self._seq), admitted))
        if self._free > 0:
            # Free calls and waiters both: let the first in line go (it may be this one).
            self._free -= 1
            self._hand_over()
        try:
            await admitted
        except asyncio.CancelledError:
            # Stopped while waiting: a call handed over meanwhile goes to the next in line.
            if admitted.done() and not admitted.cancelled():
                self._leave()
            admitted.cancel()
            raise

    def _leave(self) -> None:
        self._free += 1
        if self._waiting:
            self._free -= 1
            self._hand_over()

    def _hand_over(self) -> None:
        """Give the call just freed (not counted in `_free`) to the first live waiter."""
        while self._waiting:
            waiter = heapq.heappop(self._waiting)
            if waiter.admitted.done():
                continue  # cancelled while waiting
            clock = self._clocks[_PRIORITIES[waiter.rank]]
            clock.virtual = max(clock.virtual, waiter.start)
            waiter.admitted.set_result(None)
            self._prune(clock)
            return
        self._free += 1

    def _weight(self, tenant: str) -> float:
        weight = self._weights.get(tenant, 1.0)
        return weight if weight > 0 else 1.0

    @staticmethod
    def _prune(clock: _Clock) -> None:
        if len(clock.finish) >= _PRUNE_AT:
            clock.finish = {t: f for t, f in clock.finish.items() if f > clock.virtual}


_PRIORITIES = {p.rank: p for p in Priority}
