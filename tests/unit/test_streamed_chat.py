"""The worker's streamed chat call (apps/worker/model_client.py) through the real openai SDK:
against the real local chat model, the stored chunks add up to the result; against a TEST
DOUBLE whose stream breaks midway, the call is not retried (its text would stream twice)
and the job fails retryably, to stream afresh in its next attempt."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from apps.worker.failures import describe
from apps.worker.model_client import ModelClient
from apps.worker.streaming import DeltaWriter, StreamInterrupted
from apps.worker.tasks import chat, summarize
from jobrelay.contract import JobInput, JobRecord, JobStatus
from tests.doubles.scripted_model import scripted_model
from tests.ports import free_port
from tests.unit.gateways import gateway_for

pytestmark = pytest.mark.anyio


class Chunks:
    def __init__(self) -> None:
        self.stored: dict[int, str] = {}

    async def store(self, record: JobRecord, n: int, text: str) -> None:
        self.stored[n] = text

    async def notify(self, record: JobRecord, n: int, output: bool) -> None:
        pass


def running(task: str, text: str) -> JobRecord:
    return JobRecord.new(task, JobInput(text=text), {}, {}).moved_to(JobStatus.RUNNING)


@pytest.mark.parametrize("task", ["chat", "summarize"])
async def test_a_streamed_answer_is_stored_in_chunks_that_add_up_to_the_result(
    local_models_url: str, task: str
) -> None:
    record = running(task, "The meeting moved from Monday to Wednesday. Bring the slides.")
    if task == "chat":
        record = record.model_copy(update={"params": {"messages": [], "max_tokens": 60}})
    chunks = Chunks()
    deltas = DeltaWriter(record, chunks.store, chunks.notify)
    gateway = gateway_for(local_models_url)
    models = ModelClient(gateway, task, None, 1, deltas=deltas)
    runner = chat.run if task == "chat" else summarize.run
    try:
        result = await runner(record, models)
        await deltas.close()
    finally:
        await gateway.close()
    text = "".join(chunks.stored.values())
    if task == "chat":
        assert result.output["message"]["content"] == text
    else:
        assert result.output["summary"] == text.strip()
    assert text
    assert list(chunks.stored) == list(range(1, len(chunks.stored) + 1))
    assert result.usage.completion_tokens > len(chunks.stored)  # batched, not one per token
    assert [c.error for c in models.calls] == [None]


@contextmanager
def breaking_stream() -> Iterator[tuple[str, list[int]]]:
    """TEST DOUBLE: a chat server whose stream sends two pieces of text, then breaks."""
    requests: list[int] = []

    async def answer(request: Request) -> StreamingResponse:
        requests.append(1)

        async def events() -> AsyncIterator[bytes]:
            for piece in ["Half", " an answer"]:
                chunk = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            raise RuntimeError("the backend died mid-stream")

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1", requests
    finally:
        server.should_exit = True
        thread.join(timeout=5)


async def test_a_stream_that_breaks_after_text_is_not_retried_and_fails_retryably() -> None:
    record = running("chat", "hi").model_copy(update={"params": {"messages": []}})
    chunks = Chunks()
    deltas = DeltaWriter(record, chunks.store, chunks.notify)
    with breaking_stream() as (url, requests):
        gateway = gateway_for(url, chat_model="m")
        models = ModelClient(gateway, "chat", None, 1, deltas=deltas)
        try:
            with pytest.raises(StreamInterrupted) as caught:
                await chat.run(record, models)
        finally:
            await gateway.close()
    assert len(requests) == 1  # the retry policy would have tried again on a plain error
    assert len(models.calls) == 1
    assert models.calls[0].error is not None
    error = describe(caught.value)
    assert error.code == "model_stream_interrupted"
    assert error.retryable


_TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


@pytest.mark.parametrize("asks", [{"tools": [_TOOL]}, {"logprobs": True}])
async def test_a_chat_asking_for_tool_calls_or_logprobs_is_answered_whole(
    asks: dict[str, Any],
) -> None:
    # Those parts of an answer stream in chunks of their own, which the streamed call does
    # not put back together: asked for, the answer comes unstreamed, with all of it.
    messages = [{"role": "user", "content": "hi"}]
    record = running("chat", "hi").model_copy(update={"params": {"messages": messages, **asks}})
    chunks = Chunks()
    deltas = DeltaWriter(record, chunks.store, chunks.notify)
    with scripted_model() as double:
        double.default_content = "the whole answer"
        gateway = gateway_for(double.url, chat_model="m")
        models = ModelClient(gateway, "chat", None, 1, deltas=deltas)
        try:
            result = await chat.run(record, models)
            await deltas.close()
        finally:
            await gateway.close()
        [call] = double.calls("m")
    assert call.body["stream"] is False
    assert {name: call.body[name] for name in asks} == asks
    assert chunks.stored == {}
    assert result.output["message"]["content"] == "the whole answer"
