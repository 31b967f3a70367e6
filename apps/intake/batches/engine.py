"""OpenAI-style batches: what the `/v1/files` and `/v1/batches` routes call, and the two
subscriptions that do the work in intake (it owns submission and quotas).

- `batches` (intake publishes, intake takes; one consumer group): a batch's steps (fan_out,
  cancel, reconcile, finalize), so the work survives a restart and spreads over replicas.
- `batch-events`: a batch job ended (jobrelay.events); counted by a group commit
  (counts.py), and the last one sends the finalize step.

A batch that stops moving is nudged when a client reads it (every SDK polls
`batches.retrieve`): its fan-out is sent on again from the cursor, or its jobs are walked to
catch up on counts (sweep.py). Its window passing is noticed the same way: the batch stops
and ends `expired`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

from apps.intake.batches.counts import BatchCounts
from apps.intake.batches.fanout import PACE_SECONDS, FanOut, started
from apps.intake.batches.files import BatchFiles
from apps.intake.batches.finalize import Finalize
from apps.intake.batches.shapes import (
    BatchObject,
    BatchStatus,
    CreateBatch,
    RequestCounts,
    Step,
    StoredBatch,
    new_batch_id,
    now,
)
from apps.intake.batches.store import BatchStore
from apps.intake.batches.sweep import Sweep
from apps.intake.quotas import Quotas
from apps.intake.settings import IntakeSettings
from apps.intake.submission import Intake
from jobrelay.constants import BATCHES_TOPIC, PUBSUB
from jobrelay.contract import BatchJobEvent, JobStatus
from jobrelay.errors import ApiError
from jobrelay.publishing import Publisher
from jobrelay.service import Sidecar
from jobrelay.subscriptions import BadMessage, Delivery, Message

log = logging.getLogger(__name__)

WINDOW_SECONDS = 24 * 3600
# A batch whose counts and cursor have not moved for this long is nudged when read: its
# jobs' statuses are read in bulk (reconcile). A fan-out is sent on again only after far
# longer than a step may pace itself (fanout.PACE_SECONDS), so a waiting step is not doubled.
STALL_SECONDS = 15.0
FANOUT_STALL_SECONDS = 2 * PACE_SECONDS
# Batches a replica remembers (their totals, when each was nudged, that its finalize step
# was sent), at most, the oldest forgotten first. Each is a cache or a throttle: one
# forgotten costs a read, a nudge, or a second finalize step, which any other replica may
# send as well and which finds the batch finalized.
_REMEMBERED_BATCHES = 10_000

T = TypeVar("T")


class Batches:
    def __init__(
        self, sidecar: Sidecar, settings: IntakeSettings, intake: Intake, quotas: Quotas
    ) -> None:
        self.files = BatchFiles(sidecar.state, settings.max_batch_file_bytes)
        self.store = BatchStore(sidecar.state)
        self.counts = BatchCounts(sidecar.state)
        self._steps = Publisher(sidecar.dapr, PUBSUB, BATCHES_TOPIC)
        self._fan_out = FanOut(
            intake, quotas, settings, self.store, self.files, self.counts, self.send
        )
        self._sweep = Sweep(self.store, self.files, self.counts, sidecar.jobs, sidecar.events)
        self._finalize = Finalize(
            self.store, self.files, self.counts, sidecar.jobs, settings.status_base_url
        )
        self._totals: dict[str, int] = {}  # batch id -> total, for counting events
        self._nudged: dict[str, float] = {}
        self._finalizing: dict[str, bool] = {}

    async def send(self, step: Step) -> None:
        await self._steps.publish(step.model_dump_json())

    # The API.

    async def create(self, body: CreateBatch, tenant: str) -> BatchObject:
        source = await self.files.get(body.input_file_id, tenant)
        if source is None or source.purpose != "batch":
            raise ApiError(404, "file_not_found", f"no batch input file {body.input_file_id}")
        created = now()
        batch = StoredBatch(
            id=new_batch_id(),
            endpoint=body.endpoint.value,
            input_file_id=source.id,
            completion_window=body.completion_window,
            status=BatchStatus.VALIDATING,
            created_at=created,
            expires_at=created + WINDOW_SECONDS,
            request_counts=RequestCounts(total=source.lines),
            metadata=body.metadata,
            tenant=tenant,
        )
        await self.store.create(batch)
        await self.send(Step(batch_id=batch.id, kind="fan_out"))
        log.info("batch %s created: %d lines to %s", batch.id, source.lines, batch.endpoint)
        return batch.public(batch.request_counts)

    async def get(self, batch_id: str, tenant: str) -> BatchObject:
        shown = await self._shown(batch_id, tenant)
        if shown is None:
            raise ApiError(404, "batch_not_found", f"no batch {batch_id}")
        return shown

    async def _shown(self, batch_id: str, tenant: str) -> BatchObject | None:
        batch = await self.store.get(batch_id)
        if batch is None or batch.tenant != tenant:
            return None
        tally = await self.counts.read(batch_id)
        if not batch.status.terminal:
            await self._nudge(batch, tally.changed_at)
        return batch.public(tally.counts(batch.request_counts.total))

    async def list(self, tenant: str, after: str | None, limit: int) -> dict[str, Any]:
        ids = await self.store.ids_of(tenant)
        if after is not None:
            ids = ids[ids.index(after) + 1 :] if after in ids else []
        page: list[BatchObject] = []
        looked = 0
        for batch_id in ids:
            if len(page) == limit:
                break
            looked += 1
            # The tenant's list outlives a batch left untouched past its TTL: skipped.
            if (shown := await self._shown(batch_id, tenant)) is not None:
                page.append(shown)
        return {
            "object": "list",
            "data": [b.model_dump(mode="json") for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": looked < len(ids),
        }

    async def cancel(self, batch_id: str, tenant: str) -> BatchObject:
        current = await self.store.get(batch_id)
        if current is None or current.tenant != tenant:
            raise ApiError(404, "batch_not_found", f"no batch {batch_id}")

        def cancelling(batch: StoredBatch) -> StoredBatch | None:
            if batch.status in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS):
                update = {
                    "status": BatchStatus.CANCELLING,
                    "cancelling_at": now(),
                    "ends_as": BatchStatus.CANCELLED,
                }
                return batch.model_copy(update=update)
            return None

        # Judged on the batch as the update found it, not as read above: a cancel that lost
        # a race to another finds the batch cancelling, and answers as that one did.
        found, written = await self.store.update(batch_id, cancelling)
        if found is None:
            raise ApiError(404, "batch_not_found", f"no batch {batch_id}")
        if not written and found.status is not BatchStatus.CANCELLING:
            shown = found.status.value
            raise ApiError(409, "batch_not_cancellable", f"the batch is {shown}")
        if written:
            await self.send(Step(batch_id=batch_id, kind="cancel"))
        return await self.get(batch_id, tenant)

    async def _nudge(self, batch: StoredBatch, changed_at: float) -> None:
        clock = time.time()
        if batch.ends_as is None and batch.expires_at is not None and clock > batch.expires_at:

            def expiring(current: StoredBatch) -> StoredBatch | None:
                if current.status.terminal or current.ends_as is not None:
                    return None
                return current.model_copy(update={"ends_as": BatchStatus.EXPIRED})

            _, written = await self.store.update(batch.id, expiring)
            if written:
                await self.send(Step(batch_id=batch.id, kind="cancel"))
            return
        fan = await self.store.fanout(batch.id)
        quiet = clock - max(changed_at, fan.moved_at, float(batch.created_at))
        if quiet < STALL_SECONDS or clock - self._nudged.get(batch.id, 0.0) < STALL_SECONDS:
            return
        _remember(self._nudged, batch.id, clock)
        if not fan.done and not fan.stopped:
            if clock - max(fan.moved_at, float(batch.created_at)) < FANOUT_STALL_SECONDS:
                return
            log.info("batch %s: fan-out quiet for %.0f s; sent on again", batch.id, quiet)
            step = Step(
                batch_id=batch.id, kind="fan_out", first_line=fan.next_line, offset=fan.next_offset
            )
            await self.send(step)
        else:
            await self.send(Step(batch_id=batch.id, kind="reconcile"))

    # The subscriptions.

    async def on_step(self, message: Message) -> Delivery:
        try:
            step = message.data(Step)
        except BadMessage as exc:
            log.error("batch step discarded: %s", exc)
            return Delivery.SUCCESS
        batch = await self.store.get(step.batch_id)
        if batch is None or batch.status.terminal:
            return Delivery.SUCCESS
        source = await self.files.get(batch.input_file_id, batch.tenant)
        if source is None:
            await self._fail(batch, "input_file_missing", "the batch's input file is gone")
            return Delivery.SUCCESS
        if step.kind == "fan_out":
            if batch.ends_as is not None:
                return Delivery.SUCCESS  # cancelled or expired: its cancel step ends it
            moved, _ = await self.store.update(batch.id, started)
            if await self._fan_out.step(moved or batch, source, step):
                await self._finalize(moved or batch, source)
        elif step.kind in ("cancel", "reconcile"):
            stop = step.kind == "cancel"
            fan = await self._sweep.stop(batch.id) if stop else await self.store.fanout(batch.id)
            await self._sweep.walk(batch, source, fan, stop)
            await self._finalize(batch, source)
        else:
            await self._finalize(batch, source)
        return Delivery.SUCCESS

    async def _fail(self, batch: StoredBatch, code: str, message: str) -> None:
        def failed(current: StoredBatch) -> StoredBatch | None:
            if current.status.terminal:
                return None
            errors = {"data": [{"code": code, "message": message}]}
            update = {"status": BatchStatus.FAILED, "failed_at": now(), "errors": errors}
            return StoredBatch.model_validate(current.model_dump() | update)

        await self.store.update(batch.id, failed)

    async def on_event(self, message: Message) -> Delivery:
        try:
            event = message.data(BatchJobEvent)
        except BadMessage as exc:
            log.error("batch event discarded: %s", exc)
            return Delivery.SUCCESS
        batch_id = event.batch.batch_id
        ok = event.status is JobStatus.SUCCEEDED
        tally = await self.counts.mark(batch_id, [event.batch.line], ok)
        total = self._totals.get(batch_id)
        if total is None:
            batch = await self.store.get(batch_id)
            if batch is None:
                return Delivery.SUCCESS
            total = batch.request_counts.total
            _remember(self._totals, batch_id, total)
        if tally.completed + tally.failed >= total and batch_id not in self._finalizing:
            _remember(self._finalizing, batch_id, True)  # one last group commit: one step
            log.info("job_id=%s was the last of batch %s: finalizing", event.job_id, batch_id)
            await self.send(Step(batch_id=batch_id, kind="finalize"))
        return Delivery.SUCCESS


def _remember(seen: dict[str, T], batch_id: str, value: T) -> None:
    seen[batch_id] = value
    if len(seen) > _REMEMBERED_BATCHES:
        del seen[next(iter(seen))]  # dicts keep insertion order: the oldest
