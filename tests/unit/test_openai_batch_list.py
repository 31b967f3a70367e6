"""Reading and cancelling a tenant's batches on the in-memory FAKE of the Dapr client
(tests/doubles): a batch whose key ran out is left out of `GET /v1/batches` (the tenant's
list of ids outlives it), an id without a batch id's shape is a 404, never a read of a
batch's other keys, and a cancel that lost a race to another answers as that one did."""

from __future__ import annotations

import json

import pytest

from apps.intake.batches.engine import Batches
from apps.intake.batches.shapes import BatchObject, CreateBatch, Endpoint, StoredBatch
from jobrelay import keys
from jobrelay.constants import BATCHES_TOPIC
from jobrelay.errors import ApiError
from tests.unit.batch_setup import WiredIntake, stored_file, wired_intake

pytestmark = pytest.mark.anyio


async def _batches(count: int) -> tuple[WiredIntake, Batches, list[BatchObject]]:
    wired = wired_intake()
    engine = Batches(wired.sidecar, wired.settings, wired.intake, wired.quotas)
    line = {"custom_id": "c", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}
    await stored_file(wired.sidecar, [json.dumps(line).encode()])
    body = CreateBatch(
        input_file_id="file-in", endpoint=Endpoint.EMBEDDINGS, completion_window="24h"
    )
    created = [await engine.create(body, "t") for _ in range(count)]
    return wired, engine, created


async def test_a_batch_gone_from_the_store_is_left_out_of_the_list() -> None:
    wired, engine, created = await _batches(3)
    await wired.sidecar.state.delete(keys.batch(created[1].id))  # its TTL ran out

    listed = await engine.list("t", None, limit=20)
    assert [b["id"] for b in listed["data"]] == [created[2].id, created[0].id]
    assert not listed["has_more"]
    first = await engine.list("t", None, limit=1)
    assert [b["id"] for b in first["data"]] == [created[2].id]
    assert first["has_more"]
    rest = await engine.list("t", created[2].id, limit=1)
    assert [b["id"] for b in rest["data"]] == [created[0].id]
    assert not rest["has_more"]


@pytest.mark.parametrize("shape", ["index:t", "{id}:fanout", "{id}:counts", "batch_1"])
async def test_an_id_without_a_batch_ids_shape_is_not_found(shape: str) -> None:
    _, engine, [created] = await _batches(1)
    with pytest.raises(ApiError) as caught:
        await engine.get(shape.format(id=created.id), "t")
    assert (caught.value.status, caught.value.code) == (404, "batch_not_found")


async def test_a_cancel_that_lost_a_race_answers_as_the_winner_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wired, engine, [created] = await _batches(1)
    stale = await engine.store.get(created.id)
    assert stale is not None
    assert (await engine.cancel(created.id, "t")).status == "cancelling"
    # The second cancel read the batch before the first one's write landed.
    real_get, reads = engine.store.get, 0

    async def stale_first(batch_id: str) -> StoredBatch | None:
        nonlocal reads
        reads += 1
        return stale if reads == 1 else await real_get(batch_id)

    monkeypatch.setattr(engine.store, "get", stale_first)
    assert (await engine.cancel(created.id, "t")).status == "cancelling"
    steps = [json.loads(d) for _, topic, d in wired.dapr.published if topic == BATCHES_TOPIC]
    assert [s["kind"] for s in steps].count("cancel") == 1
