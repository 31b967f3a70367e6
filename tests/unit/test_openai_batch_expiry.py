"""A batch past its 24 h window, on the in-memory FAKE of the Dapr client (tests/doubles):
read by a client, it stops and ends `expired`, every line that never ran in its error file
as `batch_expired`, and its counts add up. Deliveries are handed to the engine as daprd
would post them (a structured CloudEvent)."""

from __future__ import annotations

import json

import pytest

from apps.intake.batches.engine import Batches
from apps.intake.batches.shapes import CreateBatch, Endpoint
from jobrelay.constants import BATCHES_TOPIC
from jobrelay.subscriptions import Delivery, Message
from tests.unit.batch_setup import stored_file, wired_intake

pytestmark = pytest.mark.anyio


def _delivery(data: str) -> Message:
    event = {"specversion": "1.0", "id": "1", "source": "intake", "type": "com.dapr.event.sent"}
    body = json.dumps(event | {"datacontenttype": "application/json", "data": json.loads(data)})
    return Message(body.encode(), {"content-type": "application/cloudevents+json"})


async def test_a_batch_past_its_window_ends_expired_with_counts_that_add_up() -> None:
    wired = wired_intake()
    dapr, sidecar = wired.dapr, wired.sidecar
    engine = Batches(sidecar, wired.settings, wired.intake, wired.quotas)
    lines = [
        {"custom_id": f"c{n}", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}
        for n in range(3)
    ]
    await stored_file(sidecar, [json.dumps(line).encode() for line in lines])
    body = CreateBatch(
        input_file_id="file-in", endpoint=Endpoint.EMBEDDINGS, completion_window="24h"
    )
    created = await engine.create(body, "t")
    # Its window passed before any line went out (the fan-out step was never delivered).
    await engine.store.update(created.id, lambda b: b.model_copy(update={"expires_at": 1}))

    seen = await engine.get(created.id, "t")
    assert seen.status == "validating"
    steps = [json.loads(d) for _, topic, d in dapr.published if topic == BATCHES_TOPIC]
    assert [s["kind"] for s in steps] == ["fan_out", "cancel"]
    for step in steps:  # delivered late, in order: the fan-out finds the batch stopped
        assert await engine.on_step(_delivery(json.dumps(step))) is Delivery.SUCCESS

    ended = await engine.get(created.id, "t")
    assert ended.status == "expired"
    assert ended.expired_at is not None
    counts = ended.request_counts
    assert (counts.total, counts.completed, counts.failed) == (3, 0, 3)
    assert ended.output_file_id is None
    assert ended.error_file_id is not None
    error_file = await engine.files.get(ended.error_file_id, "t")
    assert error_file is not None
    text = b"".join([chunk async for chunk in engine.files.content(error_file)])
    errors = [json.loads(line) for line in text.splitlines()]
    assert sorted(e["custom_id"] for e in errors) == ["c0", "c1", "c2"]
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
