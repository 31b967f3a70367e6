"""The load generator: an asyncio + httpx driver, closed loop (N clients, each sending its
next request when the last is answered) or open loop (requests at a fixed rate, whatever the
answers do). Every loop is bounded in count and time, and targets loopback only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

Body = Callable[[int], dict[str, Any]]
# Generous: a synchronous design under overload holds requests for many seconds, and that
# wait is what it is measured for, not an error.
_TIMEOUT = httpx.Timeout(120.0)


def job_body(i: int) -> dict[str, Any]:
    """The one job every design runs: an embedding of a short text, unique per request."""
    return {"task": "embed", "input": {"text": f"benchmark job {i}: the quick brown fox"}}


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests only
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by type
    ids: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # bodies, when kept
    elapsed: float = 0.0

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.answered / self.elapsed if self.elapsed else 0.0


def client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=_TIMEOUT)


async def _one(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: Mapping[str, str],
    out: Outcome,
    keep: bool,
) -> None:
    start = time.perf_counter()
    try:
        resp = await http.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        out.errors[type(exc).__name__] += 1
        return
    out.latencies.append(time.perf_counter() - start)
    out.statuses[resp.status_code] += 1
    if resp.status_code < 300:
        data = resp.json()
        out.ids.append(data["id"])
        if keep:
            out.records.append(data)


async def closed_loop(
    url: str,
    concurrency: int,
    duration: float,
    max_requests: int = 100_000,
    headers: Mapping[str, str] | None = None,
    keep: bool = False,
    first: int = 0,
) -> Outcome:
    """`concurrency` clients for `duration` seconds or `max_requests` requests in all."""
    out = Outcome()
    counter = iter(range(first, first + max_requests))
    async with client(concurrency) as http:
        start = time.perf_counter()
        stop = start + duration

        async def run() -> None:
            for i in counter:
                if time.perf_counter() >= stop:
                    return
                await _one(http, url, job_body(i), headers or {}, out, keep)

        await asyncio.gather(*(run() for _ in range(concurrency)))
        out.elapsed = time.perf_counter() - start
    return out


async def open_loop(
    url: str, rate: float, count: int, max_in_flight: int = 512, first: int = 0
) -> Outcome:
    """`count` requests sent at `rate` per second, on schedule, up to `max_in_flight` open at
    once (beyond that the generator itself would be what falls behind)."""
    out = Outcome()
    gate = asyncio.Semaphore(max_in_flight)
    async with client(max_in_flight) as http:
        start = time.perf_counter()

        async def send(i: int) -> None:
            async with gate:
                await _one(http, url, job_body(first + i), {}, out, keep=False)

        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
        out.elapsed = time.perf_counter() - start
    return out
