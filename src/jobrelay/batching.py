"""Group commit for calls to the sidecar: calls made while others are on their way go
together in the next one.

Every call to daprd costs a gRPC round trip, its own span and metrics in daprd, and a good
deal of Python in the SDK, whatever it carries; a bulk call of a dozen items costs little
more than a call of one. Under load many deliveries and submits are in flight at once, so
their state reads, unguarded state writes and publishes are gathered into bulk calls
(jobrelay.state says why guarded writes are not). Nothing waits to fill a batch: a call
made while none is on its way leaves at once, so a lone request pays nothing for this,
and a batch is whatever queued during the last round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Resp = TypeVar("Resp")

# A batch's flush answers one outcome per request, in order: the answer, or the exception
# that request's caller gets.
Flush = Callable[[list[Req]], Awaitable[Sequence[Resp | BaseException]]]


class Coalescer(Generic[Req, Resp]):
    """Runs `flush` on the requests queued meanwhile, at most `lanes` flushes at a time (so
    one slow round trip does not hold everything behind it) and `largest` requests each."""

    def __init__(self, flush: Flush[Req, Resp], lanes: int = 2, largest: int = 64) -> None:
        self._flush = flush
        self._lanes = lanes
        self._largest = largest
        self._queued: list[tuple[Req, asyncio.Future[Resp]]] = []
        self._running = 0

    async def __call__(self, request: Req) -> Resp:
        outcome: asyncio.Future[Resp] = asyncio.get_running_loop().create_future()
        self._queued.append((request, outcome))
        if self._running < self._lanes:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await outcome

    async def _drain(self) -> None:
        try:
            while self._queued:
                batch = self._queued[: self._largest]
                del self._queued[: self._largest]
                try:
                    outcomes = await self._flush([request for request, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch + self._queued:
                        future.cancel()
                    raise
                except Exception as exc:  # the whole call failed: every request did
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue  # its caller was cancelled meanwhile
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._running -= 1
