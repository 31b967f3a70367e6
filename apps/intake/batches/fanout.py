"""A batch's fan-out: its input file becomes jobs, one step of STEP_LINES lines at a time.

Each step is a message on the `batches` topic that intake itself takes, so the work
survives an intake restart (the broker redelivers an unacknowledged step) and is shared by
the replicas. A step reads its lines (one 1 MiB chunk at a time), validates each like
`POST /v1/jobs`, charges the tenant's quota, saves the records in bulk, publishes their
messages in bulk, sends the next step, and only then moves the cursor on. A crash anywhere
in between replays the step; jobs have ids derived from (batch, line), and a replayed range
(known from the cursor's `claimed_to`) inserts its records guarded, one per call, so it
never overwrites a record a worker already moved on.

The tenant's waiting-jobs quota paces the fan-out rather than refusing lines: a step waits
while the tenant is at its limit, up to PACE_SECONDS, and then ends early at the first line
that did not fit; the next step carries on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apps.intake.batches.counts import BatchCounts
from apps.intake.batches.files import FILE_TTL_SECONDS, BatchFiles
from apps.intake.batches.lines import Refused, parse
from apps.intake.batches.shapes import BatchStatus, Endpoint, Step, StoredBatch, StoredFile, now
from apps.intake.batches.store import BatchStore, Fanout
from apps.intake.quotas import Quotas, Submit
from apps.intake.settings import IntakeSettings
from apps.intake.submission import Intake
from jobrelay import keys
from jobrelay.contract import JobMessage, JobRecord, utcnow
from jobrelay.job_index import Entry
from jobrelay.limits import LimitReached
from jobrelay.store import Fenced

log = logging.getLogger(__name__)

STEP_LINES = 256
# Longest a step waits for room in the tenant's quota before it ends early: far inside the
# broker's redelivery timeout (300 s on Redis), so a pacing step is never redelivered.
PACE_SECONDS = 60.0


class _Stopped(Exception):
    """The batch was cancelled or expired: no more lines go out."""


@dataclass(frozen=True, slots=True)
class _Read:
    number: int
    text: bytes
    end: int  # the offset after the line


class FanOut:
    def __init__(
        self,
        intake: Intake,
        quotas: Quotas,
        settings: IntakeSettings,
        store: BatchStore,
        files: BatchFiles,
        counts: BatchCounts,
        send: Callable[[Step], Awaitable[None]],
    ) -> None:
        self._intake, self._quotas, self._settings = intake, quotas, settings
        self._store, self._files, self._counts = store, files, counts
        self._send_step = send

    async def step(self, batch: StoredBatch, source: StoredFile, step: Step) -> bool:
        """Send `step`'s lines out as jobs, and the next step; True when this step ended
        the file (False too for a duplicate step or a stopped batch)."""
        fan = await self._store.fanout(batch.id)
        if fan.stopped or fan.done or step.first_line < fan.next_line:
            return False  # a redelivered step the cursor has passed
        read: list[_Read] = []
        async for number, text, end in self._files.lines(source, step.first_line, step.offset):
            read.append(_Read(number, text, end))
            if len(read) == STEP_LINES:
                break
        last = len(read) < STEP_LINES
        end_line = read[-1].number + 1 if read else step.first_line
        try:
            replay_to = await self._claim(batch.id, end_line)
        except _Stopped:
            return False
        endpoint = Endpoint(batch.endpoint)
        parsed = await asyncio.gather(
            *(
                parse(r.text, r.number, batch.id, endpoint, self._settings, batch.tenant)
                for r in read
            )
        )
        try:
            admitted = await self._admit(batch, [p for p in parsed if isinstance(p, JobRecord)])
        except _Stopped:
            # Nothing stored or sent; the quota charges of the lines admitted so far lapse as
            # a job that never got its record does (apps/intake/quotas.py).
            return False
        if admitted is not None:  # the quota stayed full: end this step before that line
            read = [r for r in read if r.number < admitted]
            parsed = [p for p in parsed if _line(p) < admitted]
            last = False
        records = [p for p in parsed if isinstance(p, JobRecord)]
        refused = [p for p in parsed if isinstance(p, Refused)]
        await self._store_jobs(records, replay_to)
        await self._send(records)
        if refused:
            lines = b"".join(json.dumps(r.error_line()).encode() + b"\n" for r in refused)
            key = keys.batch_refused(batch.id, step.first_line)
            await self._store.state.put(key, lines, FILE_TTL_SECONDS)
            await self._counts.mark(batch.id, [r.line for r in refused], ok=False)
        # Where the next step starts: after the last line read (or kept, when cut short).
        after = Step(
            batch_id=batch.id,
            kind="fan_out",
            first_line=read[-1].number + 1 if read else step.first_line,
            offset=read[-1].end if read else step.offset,
        )
        nxt = None if last else after
        log.info(
            "batch %s: lines %d-%d out: %d jobs, %d refused",
            batch.id,
            step.first_line,
            end_line - 1,
            len(records),
            len(refused),
        )
        if nxt is not None:
            # Sent before the cursor moves: a crash in between replays this step (guarded),
            # never loses the chain.
            await self._send_step(nxt)
        await self._advance(batch.id, step, after, last, bool(refused))
        return last

    async def _claim(self, batch_id: str, end_line: int) -> int:
        """Claim lines up to `end_line`; the end of what earlier steps had claimed (lines
        below it may have records already)."""
        before = 1

        def claim(fan: Fanout) -> Fanout:
            nonlocal before
            if fan.stopped:
                raise _Stopped(batch_id)
            before = fan.claimed_to
            return fan.model_copy(update={"claimed_to": max(fan.claimed_to, end_line)})

        await self._store.move_fanout(batch_id, claim)
        return before

    async def _admit(self, batch: StoredBatch, records: list[JobRecord]) -> int | None:
        """Charge each record to the tenant's quota, waiting while it is full; None when all
        fit, else the line of the first that did not within PACE_SECONDS.

        _Stopped when the batch was stopped while this waited: a stop waits for the step
        under way far less than a step may wait here (sweep._SETTLE_SECONDS), and jobs sent
        after its walk would run for a batch that has ended."""
        give_up = time.monotonic() + PACE_SECONDS
        for record in records:
            while True:
                try:
                    await self._quotas.admit(Submit(batch.tenant, record.id))
                    break
                except LimitReached as exc:
                    if time.monotonic() + exc.retry_after > give_up:
                        return _line(record)
                    await asyncio.sleep(max(exc.retry_after, 0.05))
                    if (await self._store.fanout(batch.id)).stopped:
                        raise _Stopped(batch.id) from None
        return None

    async def _store_jobs(self, records: list[JobRecord], replay_to: int) -> None:
        async def insert(record: JobRecord) -> None:
            # Stored by the step this one replays (or fenced): left as it is.
            with contextlib.suppress(Fenced):
                await self._intake.jobs.create(record)

        fresh = [r for r in records if _line(r) >= replay_to]
        again = [r for r in records if _line(r) < replay_to]
        # Listed like any accepted job (GET /v1/jobs): a step's records go into the tenant's
        # index together, a page per head write, beside their stores. A replayed step's
        # entries are indexed again only where the index's head no longer holds them.
        writes: list[Awaitable[None]] = [
            *(self._intake.jobs.put_new(r) for r in fresh),
            *(insert(r) for r in again),
        ]
        if records:
            entries = [Entry.of(r) for r in records]
            writes.append(self._intake.index.add_many(records[0].tenant, entries))
        await asyncio.gather(*writes)

    async def _send(self, records: list[JobRecord]) -> None:
        # Through intake's one publish function (Intake.publish), as every job goes out:
        # concurrent publishes coalesce into bulk publishes (jobrelay.publishing).
        sent_at = utcnow()
        await asyncio.gather(
            *(
                self._intake.publish(JobMessage(job_id=r.id, task=r.task, sent_at=sent_at), r)
                for r in records
            )
        )

    async def _advance(
        self, batch_id: str, step: Step, after: Step, last: bool, refused: bool
    ) -> None:
        def advance(fan: Fanout) -> Fanout | None:
            if fan.next_line > step.first_line:
                return None  # a concurrent duplicate of this step moved it on already
            update: dict[str, object] = {
                "next_line": after.first_line,
                "next_offset": after.offset,
                "done": last,
                "moved_at": time.time(),
            }
            if refused:
                update["refused_steps"] = [*fan.refused_steps, step.first_line]
            return fan.model_copy(update=update)

        await self._store.move_fanout(batch_id, advance)


def _line(item: JobRecord | Refused) -> int:
    if isinstance(item, Refused):
        return item.line
    assert item.batch is not None
    return item.batch.line


def started(batch: StoredBatch) -> StoredBatch | None:
    """The batch moved from validating to in_progress (None if it is past that)."""
    if batch.status is not BatchStatus.VALIDATING:
        return None
    return batch.model_copy(update={"status": BatchStatus.IN_PROGRESS, "in_progress_at": now()})
