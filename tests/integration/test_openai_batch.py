"""The OpenAI Batch API on the real stack, driven by the official `openai` SDK alone:
files.create, batches.create/retrieve/list/cancel, files.content, with `base_url` pointed
at intake and the tenant's API key as `api_key`. Nothing else talks to jobrelay here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai import NotFoundError, OpenAI
from openai.types import Batch
from standardwebhooks import Webhook

from tests.integration.helpers import webhook_receiver
from tests.integration.stack import API_KEYS, WEBHOOK_SECRET, Stack

_DONE = {"completed", "failed", "expired", "cancelled"}


@pytest.fixture
def openai_client(stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{stack.url('intake')}/v1", api_key=API_KEYS["default"]) as client:
        yield client


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _embedding_line(n: int, url: str = "/v1/embeddings") -> dict[str, Any]:
    body = {"model": "text-embedding-3-small", "input": f"sentence number {n} about the sea"}
    return {"custom_id": f"emb-{n}", "method": "POST", "url": url, "body": body}


def _chat_params(n: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"Say the number {n}."}], "max_tokens": 8}


def _chat_line(n: int) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", **_chat_params(n)}
    return {"custom_id": f"chat-{n}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def _run(client: OpenAI, lines: list[dict[str, Any]], endpoint: Any) -> Batch:
    uploaded = client.files.create(file=("input.jsonl", _jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch"
    assert uploaded.bytes == len(_jsonl(lines))
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h"
    )
    assert batch.status == "validating"
    assert batch.input_file_id == uploaded.id
    return _until_done(client, batch.id, timeout=240)


def _until_done(client: OpenAI, batch_id: str, timeout: float) -> Batch:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        batch = client.batches.retrieve(batch_id)
        if batch.status in _DONE:
            return batch
        time.sleep(0.5)
    raise AssertionError(f"batch {batch_id} not done in {timeout} s: {batch.status}")


def _until_one_completed(client: OpenAI, batch_id: str) -> None:
    """Wait until a line of the batch has succeeded (its other lines still running)."""
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:
        batch = client.batches.retrieve(batch_id)
        assert batch.status not in _DONE, batch
        if batch.request_counts is not None and batch.request_counts.completed >= 1:
            return
        time.sleep(0.2)
    raise AssertionError(f"no line of batch {batch_id} succeeded in 120 s")


def _lines_of(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Also with the Go worker alone, which publishes no `batch-events`: the batch then counts its
# jobs from their statuses once its counts stop moving (docs/openai-batch.md).
@pytest.mark.polyglot
def test_embeddings_batch_through_the_sdk(openai_client: OpenAI) -> None:
    batch = _run(openai_client, [_embedding_line(n) for n in range(20)], "/v1/embeddings")
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (20, 20)
    assert batch.request_counts.failed == 0
    assert batch.error_file_id is None
    output = _lines_of(openai_client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(f"emb-{n}" for n in range(20))
    for line in output:
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "list"
        assert body["data"][0]["object"] == "embedding"
        assert len(body["data"][0]["embedding"]) > 8
    assert openai_client.files.retrieve(batch.output_file_id or "").purpose == "batch_output"
    listed = openai_client.batches.list(limit=100)
    assert batch.id in [b.id for b in listed.data]


def test_chat_batch_through_the_sdk(openai_client: OpenAI) -> None:
    batch = _run(openai_client, [_chat_line(n) for n in range(4)], "/v1/chat/completions")
    assert batch.status == "completed", batch
    output = _lines_of(openai_client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in output) == [f"chat-{n}" for n in range(4)]
    for line in output:
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert body["usage"]["total_tokens"] > 0


def test_a_line_for_another_endpoint_is_refused_and_the_batch_goes_on(
    openai_client: OpenAI,
) -> None:
    lines = [_embedding_line(1), _embedding_line(2, url="/v1/chat/completions")]
    lines += [_embedding_line(3), {"custom_id": "broken", "method": "POST"}]
    batch = _run(openai_client, lines, "/v1/embeddings")
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    counts = batch.request_counts
    assert (counts.total, counts.completed, counts.failed) == (4, 2, 2)
    errors = {
        line["custom_id"]: line["error"] for line in _lines_of(openai_client, batch.error_file_id)
    }
    assert errors["emb-2"]["code"] == "mismatched_url"
    assert errors["broken"]["code"] == "invalid_line"
    output = _lines_of(openai_client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["emb-1", "emb-3"]


def test_cancel_mid_batch_ends_cancelled_with_counts_that_add_up(openai_client: OpenAI) -> None:
    lines = [_chat_line(n) for n in range(300)]
    uploaded = openai_client.files.create(file=("many.jsonl", _jsonl(lines)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    _until_one_completed(openai_client, batch.id)
    cancelling = openai_client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    ended = _until_done(openai_client, batch.id, timeout=240)
    assert ended.status == "cancelled", ended
    counts = ended.request_counts
    assert counts is not None
    assert counts.total == 300
    assert counts.completed + counts.failed == 300
    assert 1 <= counts.completed < 300
    output = _lines_of(openai_client, ended.output_file_id)
    errors = _lines_of(openai_client, ended.error_file_id)
    assert len(output) == counts.completed
    assert len(errors) == counts.failed
    ids = {line["custom_id"] for line in output} | {line["custom_id"] for line in errors}
    assert ids == {f"chat-{n}" for n in range(300)}
    assert {"batch_cancelled", "cancelled", "job_cancelled"} & {e["error"]["code"] for e in errors}


def test_the_jobs_a_cancel_ends_tell_their_webhooks(openai_client: OpenAI) -> None:
    # Intake cancels a cancelled batch's queued jobs itself, so it publishes their webhook
    # events too (its topic scopes must allow `job-webhooks`).
    with webhook_receiver() as receiver:
        hook = {"url": receiver.url, "events": ["failed"]}
        lines = [
            {
                "custom_id": f"job-{n}",
                "method": "POST",
                "url": "/v1/jobs",
                "body": {"task": "chat", "params": _chat_params(n), "webhook": hook},
            }
            for n in range(260)
        ]
        uploaded = openai_client.files.create(file=("hooks.jsonl", _jsonl(lines)), purpose="batch")
        batch = openai_client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/jobs",  # type: ignore[arg-type]  # jobrelay's own endpoint
            completion_window="24h",
        )
        _until_one_completed(openai_client, batch.id)
        openai_client.batches.cancel(batch.id)
        ended = _until_done(openai_client, batch.id, timeout=240)
        assert ended.status == "cancelled", ended
        errors = _lines_of(openai_client, ended.error_file_id)
        cancelled = [e for e in errors if e["error"]["code"] != "batch_cancelled"]
        assert cancelled, "no job was still queued when the batch was cancelled"
        received = receiver.wait_for(len(cancelled), timeout=60)

    bodies = [Webhook(WEBHOOK_SECRET).verify(r.body, r.headers) for r in received]
    assert {b["status"] for b in bodies} == {"cancelled"}
    assert len({b["id"] for b in bodies}) == len(cancelled)


def test_another_tenants_batch_is_not_found(stack: Stack, openai_client: OpenAI) -> None:
    batch = _run(openai_client, [_embedding_line(0)], "/v1/embeddings")
    with OpenAI(base_url=f"{stack.url('intake')}/v1", api_key=API_KEYS["tenant-a"]) as other:
        with pytest.raises(NotFoundError):
            other.batches.retrieve(batch.id)
        with pytest.raises(NotFoundError):
            other.files.content(batch.output_file_id or "")
