"""The shared concurrency slots of apps/worker/limits.py, on the in-memory FAKE of the Dapr
client (tests/doubles/memory_dapr.py): how a replica passes a slot between its own calls.
tests/integration/test_shared_limits.py checks the limit across replicas on real daprd."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from dapr.aio.clients import DaprClient

from apps.worker import limits
from apps.worker.limits import SharedLimits
from apps.worker.profiles import ModelProfile
from jobrelay import keys
from jobrelay.state import State
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio

PROFILE = ModelProfile.model_validate(
    {
        "name": "p",
        "base_url": "http://127.0.0.1:1/v1",
        "model": "m",
        "capabilities": ["embeddings"],
        "max_concurrency": 2,
    }
)


def _held(dapr: MemoryDapr) -> int:
    return sum(dapr.has(keys.limit_slot(PROFILE.name, i)) for i in range(2))


async def test_the_next_call_behind_the_workers_own_limit_gets_the_slot_directly() -> None:
    """The worker's in-flight limit lets the next call in only after this one has left its
    slot: the slot waits for it, instead of a delete and an insert between two calls."""
    dapr = MemoryDapr()
    shared = SharedLimits(State(cast(DaprClient, dapr)))
    inflight = asyncio.Semaphore(1)  # the gateway's, as in apps/worker/gateway.py
    store_calls: list[int] = []

    async def call() -> None:
        async with inflight, shared.slot(PROFILE, None):
            store_calls.append(sum(dapr.calls.values()))
            await asyncio.sleep(0.01)

    await asyncio.gather(*(call() for _ in range(5)))

    first, *rest = store_calls
    assert rest == [first] * 4  # no read, insert or delete after the first call took it
    assert _held(dapr) == 1


async def test_a_slot_no_call_wants_is_given_back_soon() -> None:
    dapr = MemoryDapr()
    shared = SharedLimits(State(cast(DaprClient, dapr)))
    async with shared.slot(PROFILE, None):
        assert _held(dapr) == 1

    await asyncio.sleep(limits.PARK_SECONDS * 4)

    assert _held(dapr) == 0


async def test_calls_beyond_the_limit_wait_and_never_exceed_it() -> None:
    dapr = MemoryDapr()
    shared = SharedLimits(State(cast(DaprClient, dapr)))
    running, most = 0, 0

    async def call() -> None:
        nonlocal running, most
        async with shared.slot(PROFILE, None):
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(call() for _ in range(10)))

    assert most == 2


async def test_closing_gives_back_a_parked_slot_at_once() -> None:
    dapr = MemoryDapr()
    shared = SharedLimits(State(cast(DaprClient, dapr)))
    async with shared.slot(PROFILE, None):
        pass
    assert _held(dapr) == 1  # parked for the next call

    await shared.close()

    assert _held(dapr) == 0
