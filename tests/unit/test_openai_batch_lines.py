"""OpenAI batch lines: parsing and validating an input line, mapping a finished job to an
output line, counting lines once, and reading a file's lines across chunk boundaries. The
counts and the file run on the in-memory FAKE of the Dapr client (tests/doubles); the whole
engine runs on real daprd in tests/integration/test_openai_batch.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from dapr.aio.clients import DaprClient

from apps.intake.batches import files as batch_files
from apps.intake.batches.counts import BatchCounts
from apps.intake.batches.lines import Refused, parse, result_line
from apps.intake.batches.shapes import Endpoint, StoredFile, job_id_of
from apps.intake.settings import IntakeSettings
from jobrelay import keys
from jobrelay.contract import JobRecord, JobResult, JobStatus, Usage
from jobrelay.state import State
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio

SETTINGS = IntakeSettings()


def _line(url: str, body: dict[str, Any], custom_id: str = "c-1") -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body}).encode()


async def _parse(text: bytes, endpoint: Endpoint, number: int = 7) -> JobRecord | Refused:
    return await parse(text, number, "batch_x", endpoint, SETTINGS, "tenant-a")


async def test_an_embeddings_line_becomes_an_embed_job_with_a_deterministic_id() -> None:
    text = _line("/v1/embeddings", {"model": "m", "input": ["hello sea"]})
    record = await _parse(text, Endpoint.EMBEDDINGS)
    assert isinstance(record, JobRecord)
    assert (record.task, record.input.text, record.tenant) == ("embed", "hello sea", "tenant-a")
    assert record.id == job_id_of("batch_x", 7) != job_id_of("batch_x", 8)
    assert record.batch is not None
    assert (record.batch.line, record.batch.custom_id) == (7, "c-1")


async def test_a_chat_line_becomes_a_chat_job_without_the_model() -> None:
    messages = [{"role": "user", "content": "hi"}]
    text = _line("/v1/chat/completions", {"model": "gpt", "messages": messages, "max_tokens": 5})
    record = await _parse(text, Endpoint.CHAT)
    assert isinstance(record, JobRecord)
    assert record.task == "chat"
    assert record.params["messages"] == messages
    assert "model" not in record.params
    assert record.params["max_tokens"] == 5


@pytest.mark.parametrize(
    ("text", "endpoint", "code"),
    [
        (_line("/v1/chat/completions", {"input": "x"}), Endpoint.EMBEDDINGS, "mismatched_url"),
        (b"{not json", Endpoint.EMBEDDINGS, "invalid_line"),
        (b'{"custom_id": "a", "method": "POST"}', Endpoint.EMBEDDINGS, "invalid_line"),
        (_line("/v1/embeddings", {"input": ["a", "b"]}), Endpoint.EMBEDDINGS, "invalid_body"),
        (
            _line("/v1/embeddings", {"input": "a", "dimensions": 3}),
            Endpoint.EMBEDDINGS,
            "invalid_body",
        ),
        (
            _line("/v1/chat/completions", {"messages": [], "stream": True}),
            Endpoint.CHAT,
            "invalid_body",
        ),
        (_line("/v1/chat/completions", {"messages": [], "n": 3}), Endpoint.CHAT, "invalid_params"),
        (_line("/v1/jobs", {"task": "no-such-task"}), Endpoint.JOBS, "unknown_task"),
        (
            _line("/v1/embeddings", {"input": "x" * 2_000_000}),
            Endpoint.EMBEDDINGS,
            "line_too_large",
        ),
    ],
)
async def test_a_bad_line_is_refused_with_a_stable_code(
    text: bytes, endpoint: Endpoint, code: str
) -> None:
    refused = await _parse(text, endpoint)
    assert isinstance(refused, Refused), refused
    assert refused.code == code
    assert refused.line == 7
    error = refused.error_line()
    assert error["response"] is None
    assert error["error"]["code"] == code


async def test_a_jobs_line_is_validated_like_a_submit() -> None:
    text = _line("/v1/jobs", {"task": "classify", "input": {"text": "ok"}, "params": {}})
    refused = await _parse(text, Endpoint.JOBS)
    assert isinstance(refused, Refused)
    assert refused.code == "invalid_params"
    good = _line(
        "/v1/jobs", {"task": "classify", "input": {"text": "ok"}, "params": {"labels": ["a", "b"]}}
    )
    assert isinstance(await _parse(good, Endpoint.JOBS), JobRecord)


async def _done(endpoint: Endpoint, output: dict[str, Any], status: JobStatus) -> dict[str, Any]:
    # Any job made from a batch line; only `endpoint` decides the output body.
    record = await _parse(_line("/v1/embeddings", {"input": "x"}), Endpoint.EMBEDDINGS)
    assert isinstance(record, JobRecord)
    usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    record = record.moved_to(JobStatus.RUNNING).moved_to(
        status, result=JobResult(output=output, model="m-1", usage=usage)
    )
    return result_line(record, endpoint, "http://status")


async def test_results_map_to_openai_bodies() -> None:
    line = await _done(
        Endpoint.EMBEDDINGS, {"embedding": [0.5, 0.25], "dimensions": 2}, JobStatus.SUCCEEDED
    )
    assert line["custom_id"] == "c-1"
    assert line["error"] is None
    body = line["response"]["body"]
    assert body["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 5}
    message = {"role": "assistant", "content": "4"}
    chat = await _done(
        Endpoint.CHAT, {"message": message, "finish_reason": "stop"}, JobStatus.SUCCEEDED
    )
    choice = chat["response"]["body"]["choices"][0]
    assert chat["response"]["body"]["object"] == "chat.completion"
    assert (choice["message"], choice["finish_reason"]) == (message, "stop")
    view = await _done(Endpoint.JOBS, {"label": "a"}, JobStatus.SUCCEEDED)
    assert view["response"]["body"]["status"] == "succeeded"
    failed = await _done(Endpoint.EMBEDDINGS, {}, JobStatus.FAILED)
    assert failed["response"] is None
    assert failed["error"]["code"] == "job_failed"


async def test_a_line_counts_once_however_often_it_is_reported() -> None:
    counts = BatchCounts(State(cast(DaprClient, MemoryDapr())))
    await asyncio.gather(
        counts.mark("b", [1, 2], ok=True),
        counts.mark("b", [2], ok=True),
        counts.mark("b", [3], ok=False),
        counts.mark("other", [1], ok=False),
    )
    tally = await counts.mark("b", [3, 1], ok=False)  # a redelivery, a late duplicate
    assert (tally.completed, tally.failed) == (2, 1)
    assert tally.has(3)
    assert not tally.has(4)
    assert (await counts.read("other")).failed == 1


async def test_lines_are_read_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_files, "FILE_CHUNK_BYTES", 8)
    state = State(cast(DaprClient, MemoryDapr()))
    data = b'{"a":1}\n\n  \n{"bb":22}\n{"c":3}'
    chunks = [data[i : i + 8] for i in range(0, len(data), 8)]
    for index, chunk in enumerate(chunks):
        await state.put(keys.file_chunk(keys.file("file-1"), index), chunk)
    stored = StoredFile(
        id="file-1",
        bytes=len(data),
        created_at=0,
        filename="f",
        purpose="batch",
        tenant="t",
        chunks=len(chunks),
        lines=3,
    )
    files = batch_files.BatchFiles(state, 1000)
    read = [(n, t) async for n, t, _ in files.lines(stored, 1, 0)]
    assert read == [(1, b'{"a":1}'), (4, b'{"bb":22}'), (5, b'{"c":3}')]
    # Resuming at a line's offset reads on from there.
    offsets = [end async for _, _, end in files.lines(stored, 1, 0)]
    again = [(n, t) async for n, t, _ in files.lines(stored, 5, offsets[1])]
    assert again == [(5, b'{"c":3}')]
    assert await files._count_lines(keys.file("file-1"), len(chunks)) == 3
