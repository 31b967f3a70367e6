"""Priorities and tenant fairness on the real stack (docs/fairness.md), on every runnable
profile: tenant A's 2,000-job backlog against a 50 ms model limited to 4 at once must not
hold up tenant B's 10 jobs, nor A's own 10 `high` ones, for more than a tenth of it.

The stack is this module's own (worker max_inflight 4, the model below), torn down with
whatever is left of A's backlog, so no other suite ever sees it. The model is
bench/doubles/instant_model.py, a TEST DOUBLE whose cost is known exactly: 50 ms a call,
4 at once, so 80 jobs/s. Its call count is how much of A's backlog has drained at a given
moment (every job here is one `embed` call).

The model is paused while A submits, so the backlog is whole, and while B (then A's `high`
jobs) are submitted, so what drains of A's backlog meanwhile is counted from the moment B's
jobs are on the broker, not from how fast intake answers on a loaded machine. Pausing
changes nothing in front of B's jobs: the sidecar and the worker hold as many of A's
deliveries as under any backlog (they are full), and B's wait behind them as they would.

The figures (logged; appended as JSON lines to $JOBRELAY_FAIRNESS_REPORT if set) are in
docs/benchmarks.md, "Priorities and fairness".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import procs
from jobrelay.contract import Priority
from jobrelay.lanes import Lanes
from jobrelay.task_catalog import TASKS
from tests.integration import profiles
from tests.integration import stack as stack_module
from tests.integration.stack import ROOT, Stack, client_headers
from tests.ports import free_port

log = logging.getLogger(__name__)

BACKLOG = 2000
BURST = 10
DRAINED_AT_MOST = BACKLOG // 10  # "before A's backlog is 10 % drained"
BIG, SMALL = "tenant-a", "tenant-b"
MODEL = {"delay_ms": 50, "concurrency": 4}


@pytest.fixture(scope="module", params=profiles.selected())
def fair_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    workdir = tmp_path_factory.mktemp(f"fairness-{request.param}")
    port = free_port()
    double = procs.launch(
        "model-double",
        [sys.executable, "-m", "bench.doubles.instant_model", "--port", str(port)],
        workdir,
        {**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    model = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http(f"{model}/healthz", double)
        httpx.post(f"{model}/control", json=MODEL).raise_for_status()
        env = {
            "JOBRELAY_WORKER_MODELS_FILE": str(_models_file(workdir, model)),
            "JOBRELAY_WORKER_MAX_INFLIGHT": "4",
            "JOBRELAY_QUOTA_SUBMISSIONS_PER_MINUTE": str(10**9),
            "JOBRELAY_QUOTA_QUEUED_JOBS": str(10**9),
        }
        (workdir / "stack").mkdir()
        running = stack_module.start(workdir / "stack", request.param, app_env=env)
        try:
            yield running, model
        finally:
            stack_module.stop(running)
    finally:
        double.stop()


def _models_file(workdir: Path, model: str) -> Path:
    """`embed` on the double, the profile's shared limit 4 (apps/worker/slots.py) as well
    as the worker's own; every other task listed without a model."""
    profile = {
        "base_url": f"{model}/v1",
        "model": "instant-double",
        "capabilities": ["embeddings"],
        "max_concurrency": 4,
    }
    tasks: dict[str, list[str]] = {name: [] for name in TASKS} | {"embed": ["double"]}
    path = workdir / "models.yaml"
    path.write_text(json.dumps({"profiles": {"double": profile}, "tasks": tasks}))
    return path


def _calls(model: str) -> int:
    return int(httpx.get(f"{model}/stats", params={"spans": "0"}).json()["calls"])


def _control(model: str, **change: Any) -> None:
    httpx.post(f"{model}/control", json=MODEL | change).raise_for_status()


async def _submit(stack: Stack, tenant: str, n: int, priority: Priority) -> list[str]:
    """`n` embed jobs of `tenant`, 16 at a time; their status URLs. Each has its own
    Idempotency-Key, so a submit retried after a dropped connection (a loaded machine) never
    makes a second job."""
    gate = asyncio.Semaphore(16)
    body = {"task": "embed", "input": {"text": "fair"}, "priority": priority.value}
    async with httpx.AsyncClient(timeout=60, headers=client_headers(tenant)) as client:

        async def one() -> str:
            key = uuid.uuid4().hex
            async with gate:
                for attempt in range(3):
                    try:
                        answer = await client.post(
                            f"{stack.url('intake')}/v1/jobs",
                            json=body,
                            headers={"Idempotency-Key": key},
                        )
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
            assert answer.status_code == 202, answer.text
            return str(answer.json()["status_url"])

        return list(await asyncio.gather(*(one() for _ in range(n))))


def _until_done(tenant: str, urls: list[str], model: str, timeout: float) -> tuple[int, float]:
    """Poll `urls` until every job has succeeded; the model's call count at that moment
    (read right after, so it over-counts by a poll's worth at most) and the seconds taken."""
    started = time.monotonic()
    left = set(urls)
    with httpx.Client(timeout=10, headers=client_headers(tenant)) as client:
        while left:
            assert time.monotonic() - started < timeout, f"{len(left)} of {tenant} not done"
            for url in list(left):
                answer = client.get(url)
                if answer.status_code == 200:
                    assert answer.json()["status"] == "succeeded", answer.text
                    left.discard(url)
            time.sleep(0.02)
    return _calls(model), time.monotonic() - started


def test_a_small_tenant_and_high_priority_overtake_a_big_backlog(
    fair_stack: tuple[Stack, str],
) -> None:
    stack, model = fair_stack
    lanes = Lanes()
    # The precondition, not hidden: two tenants in one shard share its lanes, and wait for
    # each other in the broker's order (docs/fairness.md).
    assert lanes.shard(BIG) != lanes.shard(SMALL), "pick tenants on different shards"

    _control(model, paused=True)
    asyncio.run(_submit(stack, BIG, BACKLOG, Priority.NORMAL))
    before = _calls(model)  # the warm-up's, and none of A's: the model is paused
    small = asyncio.run(_submit(stack, SMALL, BURST, Priority.NORMAL))
    _control(model, paused=False)
    at_small_done, small_seconds = _until_done(SMALL, small, model, timeout=60)
    big_drained = at_small_done - before - BURST

    _control(model, paused=True)
    at_high = _calls(model)
    high = asyncio.run(_submit(stack, BIG, BURST, Priority.HIGH))
    _control(model, paused=False)
    at_high_done, high_seconds = _until_done(BIG, high, model, timeout=60)
    normal_drained = at_high_done - at_high - BURST
    figures = {
        "profile": stack.profile,
        "backlog": BACKLOG,
        "small_tenant_seconds": round(small_seconds, 2),
        "big_done_when_small_done": big_drained,
        "high_seconds": round(high_seconds, 2),
        "normal_done_while_high_ran": normal_drained,
        "load_average": os.getloadavg()[0],
    }
    log.warning("fairness figures: %s", json.dumps(figures))
    report = os.environ.get("JOBRELAY_FAIRNESS_REPORT")
    if report:
        with open(report, "a") as out:
            out.write(json.dumps(figures) + "\n")

    assert big_drained <= DRAINED_AT_MOST
    assert normal_drained <= DRAINED_AT_MOST
    # There was a backlog left to overtake the whole time.
    assert at_high_done - before - 2 * BURST < BACKLOG
