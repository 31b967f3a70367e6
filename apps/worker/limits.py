"""Per-profile limits shared by every worker replica, kept in the Dapr state store.

Concurrency: `max_concurrency` slots per profile, one key each (`limit:{profile}:slot:{n}`).
A replica takes a free slot by inserting its key (first-write, so two replicas cannot take
one slot), with a TTL: a replica that dies holding a slot frees it when the TTL runs out,
instead of shrinking the pool for good. There is no shared counter to read-modify-write, so
replicas taking different slots never contend.

Inside a replica a slot is handed straight from a call that ends to the next call waiting
for one, with no store round trip in between: a model at its limit stays at its limit. A slot
no call here waits for yet is kept for PARK_SECONDS, since the worker's own in-flight limit
(apps/worker/gateway.py) lets the next call in only once this one has ended; only then is it
given back (its key deleted). A call that finds every slot taken waits for a local hand-over,
and looks at the store again after a doubling pause for slots other replicas gave back.

Rate: a counter per profile and minute (`limit:{profile}:rate:{minute}`, requests and tokens),
counted up through the state layer's read-modify-write; over the limit, a call waits for the
next minute, holding no slot meanwhile (apps/worker/gateway.py).

Every wait ends at the job's deadline (LimitWait).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.worker.profiles import ModelProfile
from jobrelay import keys
from jobrelay.errors import DAPR_ERRORS
from jobrelay.state import KeyTaken, State, Write

log = logging.getLogger(__name__)

# A slot outlives its call's timeout by this before its TTL frees it for others.
_GRACE_SECONDS = 10.0
# Looking for slots other replicas gave back: the first pause, doubling up to the last.
_FIRST_LOOK_SECONDS = 0.025
_LAST_LOOK_SECONDS = 1.0
_RATE_WINDOW_TTL_SECONDS = 120
# How long a slot no call of this replica waits for is kept for the next one: long enough for
# a call queued behind the worker's in-flight limit to get going, short enough that another
# replica hardly notices.
PARK_SECONDS = 0.05


class LimitWait(Exception):
    """The limit did not free up before the job's deadline."""


@dataclass(eq=False)
class _Slot:
    index: int
    token: str  # written in the slot's key: this replica, and this take of the slot
    taken_at: float  # when its key's TTL was last set (time.monotonic())


@dataclass
class _Pool:
    """What this replica knows of one profile's slots."""

    waiting: deque[asyncio.Future[_Slot]] = field(default_factory=deque)
    # Held, but by no call: each with the timer that gives it back.
    parked: dict[_Slot, asyncio.TimerHandle] = field(default_factory=dict)


class SharedLimits:
    def __init__(self, state: State) -> None:
        self._state = state
        self._owner = uuid.uuid4().hex  # this replica, as written in the slots it holds
        self._pools: dict[str, _Pool] = {}
        self._background: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def slot(self, profile: ModelProfile, deadline: datetime | None) -> AsyncIterator[None]:
        """Hold one of the profile's `max_concurrency` slots while the block runs."""
        if profile.max_concurrency is None:
            yield
            return
        pool = self._pools.setdefault(profile.name, _Pool())
        held = self._unpark_one(pool) or await self._take(profile, pool, deadline)
        try:
            yield
        finally:
            self._pass_on(profile, pool, held)

    async def _take(self, profile: ModelProfile, pool: _Pool, deadline: datetime | None) -> _Slot:
        pause, looked = _FIRST_LOOK_SECONDS, False
        while True:
            # A call arriving behind others that wait lets a hand-over reach them first.
            if looked or not pool.waiting:
                taken = await self._take_free(profile)
                if taken is not None:
                    return taken
            looked = True
            left = None if deadline is None else deadline.timestamp() - time.time()
            if left is not None and left <= 0:
                raise LimitWait(f"{profile.name}: no free slot before the deadline")
            handed: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
            pool.waiting.append(handed)
            try:
                wait = pause if left is None else min(pause, left)
                return await asyncio.wait_for(asyncio.shield(handed), wait)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                # Stopped while waiting: a slot handed over meanwhile must not be lost.
                if handed.done() and not handed.cancelled():
                    self._pass_on(profile, pool, handed.result())
                handed.cancel()
                raise
            finally:
                if handed in pool.waiting:
                    pool.waiting.remove(handed)
            if handed.done() and not handed.cancelled():
                return handed.result()  # handed over just as the wait timed out
            handed.cancel()
            pause = min(pause * 2, _LAST_LOOK_SECONDS) * random.uniform(0.75, 1.0)  # noqa: S311

    async def _take_free(self, profile: ModelProfile) -> _Slot | None:
        """A slot no one holds, now held by this replica; None if all are taken."""
        limit = profile.max_concurrency or 0
        slot_keys = [keys.limit_slot(profile.name, i) for i in range(limit)]
        found = await self._state.get_many(slot_keys)
        # Absent keys only: a slot that failed to read may be held.
        free = [i for i, key in enumerate(slot_keys) if key in found and found[key] is None]
        random.shuffle(free)  # replicas racing for slots mostly try different ones
        for index in free:
            # Unique to this take: two calls of this replica racing for one slot write
            # different values, so the state layer can tell which insert went in.
            token = f"{self._owner}:{uuid.uuid4().hex}"
            try:
                await self._state.insert(
                    slot_keys[index], token, int(profile.timeout_seconds + _GRACE_SECONDS)
                )
            except KeyTaken:
                continue
            return _Slot(index, token, time.monotonic())
        return None

    def _pass_on(self, profile: ModelProfile, pool: _Pool, slot: _Slot) -> None:
        """Hand `slot` to a call of this replica waiting for one, else park it."""
        lease = profile.timeout_seconds + _GRACE_SECONDS
        if time.monotonic() - slot.taken_at > lease / 2:
            # The next call may run as long as the last: its key must outlive that.
            slot.taken_at = time.monotonic()
            self._in_background(self._extend(profile, slot, int(lease)))
        while pool.waiting:
            handed = pool.waiting.popleft()
            if not handed.done():
                handed.set_result(slot)
                return
        loop = asyncio.get_running_loop()
        pool.parked[slot] = loop.call_later(PARK_SECONDS, self._unpark, profile, pool, slot)

    async def close(self) -> None:
        """Give back the slots no call holds, rather than leave them to their TTL."""
        for name, pool in self._pools.items():
            while pool.parked:
                slot, timer = pool.parked.popitem()
                timer.cancel()
                await self._give_back(name, slot)

    def _unpark_one(self, pool: _Pool) -> _Slot | None:
        if not pool.parked:
            return None
        slot, timer = pool.parked.popitem()
        timer.cancel()
        return slot

    def _unpark(self, profile: ModelProfile, pool: _Pool, slot: _Slot) -> None:
        if pool.parked.pop(slot, None) is not None:
            self._in_background(self._give_back(profile.name, slot))

    async def _extend(self, profile: ModelProfile, slot: _Slot, ttl: int) -> None:
        key = keys.limit_slot(profile.name, slot.index)
        try:
            await self._state.put(key, slot.token, ttl)
        except DAPR_ERRORS as exc:
            log.warning("profile=%s slot %d lease not extended: %s", profile.name, slot.index, exc)

    async def _give_back(self, profile: str, slot: _Slot) -> None:
        try:
            await self._state.delete(keys.limit_slot(profile, slot.index))
        except DAPR_ERRORS as exc:
            # Left to its TTL: the pool is a slot short until then.
            log.warning("profile=%s slot %d not given back: %s", profile, slot.index, exc)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def admit(self, profile: ModelProfile, tokens: int, deadline: datetime | None) -> None:
        """Count one request of about `tokens` tokens against the profile's per-minute limits."""
        rpm, tpm = profile.requests_per_minute, profile.tokens_per_minute
        if rpm is None and tpm is None:
            return
        while True:
            minute = int(time.time() // 60)

            def count(data: bytes | None) -> Write | None:
                window = json.loads(data) if data else {}
                requests, used = window.get("requests", 0), window.get("tokens", 0)
                if (rpm is not None and requests + 1 > rpm) or (
                    tpm is not None and used + tokens > tpm and used > 0
                ):
                    raise LimitWait(profile.name)
                counted = {"requests": requests + 1, "tokens": used + tokens}
                return Write(json.dumps(counted), _RATE_WINDOW_TTL_SECONDS)

            try:
                await self._state.update(keys.rate_window(profile.name, minute), count)
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
