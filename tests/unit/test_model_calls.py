"""The worker's rules for model calls, observed over real HTTP against a scripted
OpenAI-compatible server (a test double, tests/doubles/scripted_model.py): retries with
backoff, Retry-After, the deadline cap, fallback order, fail-fast, extract's repair, and the
per-worker in-flight limit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import anyio
import openai
import pytest

from apps.worker.failures import describe
from apps.worker.fair_gate import Turn
from apps.worker.gateway import Gateway, ModelBudgetSpent
from apps.worker.model_client import ModelClient
from apps.worker.profiles import Catalog, ModelProfile
from apps.worker.tasks import extract
from apps.worker.tasks.extract import InvalidOutput
from jobrelay.contract import JobInput, JobRecord, Priority, utcnow
from tests.doubles.scripted_model import Reply, ScriptedModel, scripted_model

pytestmark = pytest.mark.anyio

TASKS = ("embed", "extract", "chat")


@pytest.fixture
def double() -> Iterator[ScriptedModel]:
    with scripted_model() as server:
        yield server


def _catalog(url: str, **options: Any) -> Catalog:
    def profile(name: str, model: str) -> ModelProfile:
        return ModelProfile.model_validate(
            {
                "name": name,
                "base_url": url,
                "model": model,
                "capabilities": ["chat", "embeddings"],
                **options,
            }
        )

    return Catalog(
        profiles={"first": profile("first", "model-a"), "second": profile("second", "model-b")},
        tasks={t: ["first", "second"] for t in TASKS},
    )


@pytest.fixture
async def gateway(double: ScriptedModel) -> AsyncIterator[Gateway]:
    gw = Gateway(_catalog(double.url), limits=None, max_inflight=8)
    yield gw
    await gw.close()


def _models(gateway: Gateway, task: str = "embed", deadline_in: float | None = None) -> ModelClient:
    deadline = utcnow() + timedelta(seconds=deadline_in) if deadline_in else None
    return ModelClient(gateway, task, deadline, attempt=1)


async def test_server_errors_are_retried_on_the_same_model(
    double: ScriptedModel, gateway: Gateway
) -> None:
    double.script("model-a", Reply(500), Reply(503))
    models = _models(gateway)

    call = await models.embed(["hello"])

    assert call.model == "model-a"
    assert [s.status for s in double.calls()] == [500, 503, 200]
    assert [c.status_code for c in models.calls] == [500, 503, None]
    gaps = [b.at - a.at for a, b in zip(double.calls(), double.calls()[1:], strict=False)]
    assert all(gap >= 0.2 for gap in gaps), f"backoff between tries: {gaps}"


async def test_retry_after_is_honoured(double: ScriptedModel, gateway: Gateway) -> None:
    double.script("model-a", Reply.rate_limited(1.5))

    await _models(gateway).embed(["hello"])

    first, second = double.calls()
    assert second.at - first.at >= 1.4


@pytest.mark.parametrize(
    "value", ["5s", "nan", "Wed, 21 Oct 2015 07:28:00 -0000", "inf", "-3", "soon"]
)
async def test_a_malformed_retry_after_is_ignored_and_the_backoff_waited(
    double: ScriptedModel, gateway: Gateway, value: str
) -> None:
    # Neither internal_error (a crash in the wait) nor a retry without any wait (nan).
    double.script("model-a", Reply(429, headers={"retry-after": value}))

    await _models(gateway).embed(["hello"])

    first, second = double.calls()
    assert [first.status, second.status] == [429, 200]
    assert second.at - first.at >= 0.2  # the backoff's fixed half, at least


async def test_retries_stop_at_the_deadline_instead_of_sleeping_past_it(
    double: ScriptedModel, gateway: Gateway
) -> None:
    double.script("model-a", *[Reply.rate_limited(30)] * 3)
    double.script("model-b", *[Reply.rate_limited(30)] * 3)
    models = _models(gateway, deadline_in=2)

    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as raised:
        await models.embed(["hello"])

    assert time.monotonic() - started < 2.5
    assert describe(raised.value).retryable  # the broker redelivers the job later


async def test_a_model_that_keeps_failing_falls_back_to_the_next_in_order(
    double: ScriptedModel, gateway: Gateway
) -> None:
    double.script("model-a", Reply(500), Reply(500), Reply(500))
    models = _models(gateway)

    call = await models.embed(["hello"])

    assert call.model == "model-b"
    assert [s.model for s in double.calls()] == ["model-a"] * 3 + ["model-b"]
    assert [c.profile for c in models.calls] == ["first"] * 3 + ["second"]


async def test_a_job_never_makes_more_model_calls_than_its_budget(
    double: ScriptedModel, gateway: Gateway
) -> None:
    """Retries and fallbacks count against the job's budget (what it has left over all its
    deliveries): once spent, the job fails for good, whatever the policy would still try."""
    double.script("model-a", *[Reply(500)] * 3)
    double.script("model-b", *[Reply(500)] * 3)
    models = ModelClient(gateway, "embed", None, attempt=4, budget=4)

    with pytest.raises(ModelBudgetSpent) as raised:
        await models.embed(["hello"])

    assert len(double.calls()) == 4
    assert (describe(raised.value).code, describe(raised.value).retryable) == (
        "model_call_budget_exhausted",
        False,
    )


async def test_an_input_too_long_goes_to_the_next_model_at_once(
    double: ScriptedModel, gateway: Gateway
) -> None:
    double.script("model-a", Reply(400, error_code="context_length_exceeded"))

    answer = await _models(gateway, "chat").chat({"messages": [{"role": "user", "content": "x"}]})

    assert answer.model == "model-b"
    assert [s.model for s in double.calls()] == ["model-a", "model-b"]


async def test_a_refusal_fails_at_once_without_retry_or_fallback(
    double: ScriptedModel, gateway: Gateway
) -> None:
    double.script("model-a", Reply(400, error_code="content_filter"))
    models = _models(gateway, "chat")

    with pytest.raises(openai.BadRequestError) as raised:
        await models.chat({"messages": [{"role": "user", "content": "x"}]})

    assert len(double.calls()) == 1
    error = describe(raised.value)
    assert (error.code, error.retryable) == ("model_rejected", False)
    assert "400" in error.message


def _extract_job() -> JobRecord:
    schema = {
        "type": "object",
        "required": ["city"],
        "properties": {"city": {"type": "string"}},
        "additionalProperties": False,
    }
    return JobRecord.new("extract", JobInput(text="I live in Lyon."), {"schema": schema}, {})


async def test_extract_repairs_invalid_output_once(double: ScriptedModel, gateway: Gateway) -> None:
    double.script("model-a", Reply(content='{"town": "Lyon"}'), Reply(content='{"city": "Lyon"}'))
    models = _models(gateway, "extract")

    result = await extract.run(_extract_job(), models)

    assert result.output == {"data": {"city": "Lyon"}, "unsupported": []}
    repair = double.calls()[1].body["messages"][-1]["content"]
    assert "does not match the schema" in repair
    assert "city" in repair
    assert result.usage.total_tokens == 16  # both calls counted


async def test_extract_marks_a_value_the_text_does_not_hold(
    double: ScriptedModel, gateway: Gateway
) -> None:
    """Against the scripted test double, which answers whatever it is told: here a city the
    input never names, which the output must flag rather than pass off as read."""
    double.script("model-a", Reply(content='{"city": "Paris"}'))

    result = await extract.run(_extract_job(), _models(gateway, "extract"))

    assert result.output == {"data": {"city": "Paris"}, "unsupported": ["/city"]}
    sent = double.calls()[0].body["response_format"]["json_schema"]["schema"]
    spans = sent["properties"]["city"]["enum"]  # what the model may choose: spans of the text
    assert "Lyon" in spans
    assert all(span in "I live in Lyon." for span in spans)


async def test_extract_gives_up_with_invalid_output_after_its_repairs(
    double: ScriptedModel, gateway: Gateway
) -> None:
    double.script("model-a", *[Reply(content="not json")] * 3)

    with pytest.raises(InvalidOutput) as raised:
        await extract.run(_extract_job(), _models(gateway, "extract"))

    assert len(double.calls()) == 1 + extract.MAX_REPAIRS
    error = describe(raised.value)
    assert (error.code, error.retryable) == ("invalid_output", False)


async def test_the_worker_holds_its_in_flight_limit_under_a_burst(double: ScriptedModel) -> None:
    double.default_delay = 0.05
    gateway = Gateway(_catalog(double.url), limits=None, max_inflight=4)

    async with anyio.create_task_group() as group:
        for i in range(100):
            group.start_soon(_models(gateway).embed, [f"text {i}"])
    await gateway.close()

    assert len(double.calls()) == 100
    assert double.max_in_flight == 4


async def test_a_waiting_call_of_another_tenant_or_priority_goes_before_a_backlog(
    double: ScriptedModel,
) -> None:
    """The gateway's in-flight wait is the fair gate (apps/worker/fair_gate.py), fed the
    job's priority and tenant through its ModelClient."""
    double.default_delay = 0.05
    gateway = Gateway(_catalog(double.url), limits=None, max_inflight=1)

    def models(turn: Turn) -> ModelClient:
        return ModelClient(gateway, "embed", None, attempt=1, turn=turn)

    async with anyio.create_task_group() as group:
        for i in range(8):
            group.start_soon(models(Turn(Priority.NORMAL, "big")).embed, [f"big {i}"])
            await anyio.sleep(0.001)  # queued in this order
        group.start_soon(models(Turn(Priority.NORMAL, "small")).embed, ["small"])
        await anyio.sleep(0.001)
        group.start_soon(models(Turn(Priority.HIGH, "big")).embed, ["urgent"])
    await gateway.close()

    order = [str(seen.body["input"]).strip("[]'") for seen in double.calls()]
    assert len(order) == 10
    # The first call was already in flight; then the high one, then the other tenant's, at
    # most one of the backlog before it (fair queuing's tie), and the backlog in its order.
    assert order[1] == "urgent"
    assert order.index("small") <= 3
    assert [o for o in order if o.startswith("big")] == [f"big {i}" for i in range(8)]
