"""Checking extract's answers against the client's schema away from the event loop, under a
CPU-time limit (apps/worker/output_check.py; issue 17, High 1). The model is the scripted
test double (tests/doubles/scripted_model.py) over real HTTP; the checks run in real child
processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from apps.worker.failures import describe
from apps.worker.gateway import Gateway
from apps.worker.models import ModelClient
from apps.worker.output_check import CheckExhausted, check
from apps.worker.tasks import extract
from apps.worker.tasks.extract import InvalidOutput
from jobrelay.contract import JobInput, JobRecord
from tests.doubles.scripted_model import ScriptedModel, scripted_model
from tests.unit.gateways import gateway_for
from tests.unit.test_extract_schema import doubling

pytestmark = pytest.mark.anyio

MIB = 2**20


@pytest.fixture
def double() -> Iterator[ScriptedModel]:
    with scripted_model() as server:
        yield server


@pytest.fixture
async def models(double: ScriptedModel) -> AsyncIterator[ModelClient]:
    gateway: Gateway = gateway_for(double.url, chat_model="scripted")
    yield ModelClient(gateway, "extract", None, 1)
    await gateway.close()


class LoopWatch:
    """The longest the event loop went without running a 10 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now


async def watched(work: Any) -> tuple[Any, float]:
    watch = LoopWatch()
    ticker = asyncio.create_task(watch.tick())
    try:
        return await work, watch.longest
    finally:
        ticker.cancel()


async def test_a_backtracking_pattern_neither_blocks_the_loop_nor_takes_long(
    double: ScriptedModel, models: ModelClient
) -> None:
    # ^(a+)+$ against 26 a's and a b: seconds per check in Python's engine, on the loop.
    double.default_content = '"' + "a" * 26 + 'b"'
    schema = {"type": "string", "pattern": "^(a+)+$"}
    record = JobRecord.new("extract", JobInput(text="aaa"), {"schema": schema}, {})
    watch = LoopWatch()
    ticker = asyncio.create_task(watch.tick())
    started = time.monotonic()
    try:
        with pytest.raises(InvalidOutput, match="does not match"):
            await extract.run(record, models)
    finally:
        ticker.cancel()
    assert watch.longest < 0.5
    assert time.monotonic() - started < 10
    assert len(double.calls()) == 3  # the first answer and both repairs


async def test_the_loop_keeps_running_while_an_answer_is_checked(
    double: ScriptedModel, models: ModelClient
) -> None:
    double.default_content = '{"name": "Ada"}'
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    record = JobRecord.new("extract", JobInput(text="Ada"), {"schema": schema}, {})
    result, longest = await watched(extract.run(record, models))
    assert result.output == {"data": {"name": "Ada"}, "unsupported": []}
    assert longest < 0.5


async def test_a_check_past_its_cpu_limit_is_stopped_and_fails_the_job_clearly() -> None:
    # The doubling schema that intake refuses, checked as if it had got through: the kernel
    # stops the child after its CPU second, and the loop never waits on it.
    started = time.monotonic()
    with pytest.raises(CheckExhausted) as raised:
        await watched(check(doubling(40), "1", cpu_seconds=1, memory_bytes=512 * MIB))
    assert time.monotonic() - started < 8
    error = describe(raised.value)
    assert (error.code, error.retryable) == ("schema_too_complex", False)


async def test_a_schema_whose_corner_runs_on_pythons_engine_is_still_bounded() -> None:
    # unevaluatedProperties beside patternProperties matches inside jsonschema with `re`:
    # the CPU limit is what ends it.
    schema = {
        "type": "object",
        "patternProperties": {"^(a+)+$": {}},
        "unevaluatedProperties": False,
    }
    started = time.monotonic()
    with pytest.raises(CheckExhausted):
        await check(schema, '{"' + "a" * 40 + 'b": 1}', cpu_seconds=1, memory_bytes=512 * MIB)
    assert time.monotonic() - started < 8


async def test_an_answer_that_is_not_json_is_a_problem_not_a_crash() -> None:
    checked = await check({"type": "integer"}, "1" * 5000, cpu_seconds=2, memory_bytes=512 * MIB)
    assert checked.data is None
    assert "not valid JSON" in checked.problems[0]
