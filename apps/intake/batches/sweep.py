"""Walking a batch's lines against its jobs, WINDOW_LINES at a time (one bulk read each): to stop it
(cancel, expiry) or to catch up on counts that never arrived.

- stop: the fan-out is stopped first, so no line goes out after the walk; a queued job is
  cancelled (the same guarded move as `DELETE /v1/jobs/{id}`); a line that never went out
  counts as failed and gets an error line when the batch is finalized. A running job is left
  to end on its own, and counts then.
- catch up: a job that ended but whose `batch-events` message never came (a worker that
  does not publish them, such as the Go worker, or a lost message) is counted now. This
  runs only when a batch's counts stopped moving, never per job.
"""

from __future__ import annotations

import asyncio
import logging

from apps.intake.batches.counts import BatchCounts
from apps.intake.batches.files import BatchFiles, windows
from apps.intake.batches.shapes import StoredBatch, StoredFile, job_id_of
from apps.intake.batches.store import BatchStore, Fanout
from jobrelay.cancelling import JobFinished, JobNotFound, cancel
from jobrelay.conflicts import Contended
from jobrelay.contract import JobStatus
from jobrelay.events import Events
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

# How long a stop waits for a fan-out step already under way to finish its range.
_SETTLE_SECONDS = 10.0


class Sweep:
    def __init__(
        self,
        store: BatchStore,
        files: BatchFiles,
        counts: BatchCounts,
        jobs: JobStore,
        events: Events,
    ) -> None:
        self._store, self._files, self._counts = store, files, counts
        self._jobs, self._events = jobs, events

    async def stop(self, batch_id: str) -> Fanout:
        """Stop the fan-out: no step starts after this; waits (a while) for one under way."""

        def stopped(fan: Fanout) -> Fanout | None:
            return None if fan.stopped else fan.model_copy(update={"stopped": True})

        fan, _ = await self._store.move_fanout(batch_id, stopped)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + _SETTLE_SECONDS
        while fan.claimed_to > fan.next_line and not fan.done and loop.time() < give_up:
            await asyncio.sleep(0.2)
            fan = await self._store.fanout(batch_id)
        return fan

    async def walk(self, batch: StoredBatch, source: StoredFile, fan: Fanout, stop: bool) -> None:
        tally = await self._counts.read(batch.id)
        lines = self._files.lines(source, 1, 0)
        uncounted = (number async for number, _, _ in lines if not tally.has(number))
        async for window in windows(uncounted):
            await self._settle(batch, fan, window, stop)

    async def _settle(self, batch: StoredBatch, fan: Fanout, lines: list[int], stop: bool) -> None:
        out = [n for n in lines if n < fan.claimed_to]
        failed = [n for n in lines if n >= fan.claimed_to] if stop else []
        ids = {n: job_id_of(batch.id, n) for n in out}
        statuses = await self._jobs.statuses(list(ids.values()))
        succeeded: list[int] = []
        to_cancel: list[int] = []
        for number, job_id in ids.items():
            if job_id not in statuses:
                continue  # not read this time; the next walk sees it
            status = statuses[job_id]
            if status is None:
                if stop:
                    failed.append(number)  # never stored: it never went out
            elif status is JobStatus.SUCCEEDED:
                succeeded.append(number)
            elif status.terminal:
                failed.append(number)
            elif status is JobStatus.QUEUED and stop:
                to_cancel.append(number)
        cancelled = await asyncio.gather(*(self._cancel(batch, ids[n]) for n in to_cancel))
        failed += [n for n, done in zip(to_cancel, cancelled, strict=True) if done]
        if succeeded:
            await self._counts.mark(batch.id, succeeded, ok=True)
        if failed:
            await self._counts.mark(batch.id, failed, ok=False)

    async def _cancel(self, batch: StoredBatch, job_id: str) -> bool:
        """Cancel a queued job; True once it ended (cancelled now, or ended meanwhile)."""
        try:
            record = await cancel(self._jobs, job_id, batch.tenant)
        except JobFinished:
            return False  # it ended on its own: its own event counts it
        except (JobNotFound, Contended) as exc:
            log.warning("job_id=%s of batch %s not cancelled: %s", job_id, batch.id, exc)
            return False
        await self._events.changed(record)
        return True
