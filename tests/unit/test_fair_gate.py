"""The worker's fair gate (apps/worker/fair_gate.py): who gets the next model call."""

from __future__ import annotations

import asyncio

import pytest

from apps.worker.fair_gate import FairGate, Turn
from jobrelay.contract import Priority

pytestmark = pytest.mark.anyio


async def _order(gate: FairGate, turns: list[Turn], hold: int) -> list[str]:
    """The order in which `turns` (queued in this order behind `hold` calls in flight) get
    their call; each is named `{tenant}{n}`."""
    served: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.admitted(Turn(tenant="x")):
            await release.wait()

    async def call(name: str, turn: Turn) -> None:
        async with gate.admitted(turn):
            served.append(name)
            await asyncio.sleep(0)

    holders = [asyncio.create_task(holder()) for _ in range(hold)]
    await asyncio.sleep(0)
    calls = []
    for n, turn in enumerate(turns):
        calls.append(asyncio.create_task(call(f"{turn.tenant}{n}", turn)))
        await asyncio.sleep(0)  # queued in this order
    release.set()
    await asyncio.gather(*holders, *calls)
    return served


async def test_a_tenant_arriving_behind_a_backlog_goes_next() -> None:
    gate = FairGate(1)
    turns = [Turn(tenant="a")] * 30 + [Turn(tenant="b")]

    served = await _order(gate, turns, hold=1)

    # Fair queuing's bound: at most one of A's waiting calls (the one whose start tag ties
    # with B's) goes before B's, not the 30 that came first.
    assert served.index("b30") <= 1


async def test_two_backlogs_alternate() -> None:
    gate = FairGate(1)
    turns = [Turn(tenant="a")] * 4 + [Turn(tenant="b")] * 4

    served = await _order(gate, turns, hold=1)

    assert [s[0] for s in served] == ["a", "b", "a", "b", "a", "b", "a", "b"]


async def test_weights_share_calls_in_proportion() -> None:
    gate = FairGate(1, {"a": 3})
    turns = [Turn(tenant="a")] * 6 + [Turn(tenant="b")] * 6

    served = await _order(gate, turns, hold=1)

    first_eight = [s[0] for s in served[:8]]
    assert first_eight.count("a") == 6
    assert first_eight.count("b") == 2


async def test_priority_beats_fair_share_and_order_within_a_tenant_is_kept() -> None:
    gate = FairGate(1)
    low, normal, high = (Turn(p, "a") for p in (Priority.LOW, Priority.NORMAL, Priority.HIGH))
    turns = [low, normal, normal, high, Turn(Priority.HIGH, "b")]

    served = await _order(gate, turns, hold=1)

    assert served == ["a3", "b4", "a1", "a2", "a0"]


async def test_no_more_calls_than_capacity_and_none_lost_to_cancelling() -> None:
    gate = FairGate(2)
    inside = 0
    most = 0

    async def call() -> None:
        nonlocal inside, most
        async with gate.admitted(Turn()):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    calls = [asyncio.create_task(call()) for _ in range(20)]
    await asyncio.sleep(0)
    for task in calls[5:10]:
        task.cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)

    assert most == 2
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 5
    # Every call was given back: two fit at once again.
    async with gate.admitted(Turn()), gate.admitted(Turn()):
        assert gate.waiting == 0


@pytest.mark.parametrize("capacity", [1, 4])
async def test_an_idle_gate_admits_at_once(capacity: int) -> None:
    gate = FairGate(capacity)

    async with gate.admitted(Turn(Priority.LOW, "a")):
        assert gate.waiting == 0
