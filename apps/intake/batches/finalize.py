"""Finalizing a batch: once every line has ended, its output and error files are written by
reading its jobs WINDOW_LINES records per bulk read and streaming their lines into file chunks.

The error file holds, in this order: the lines the fan-out refused (with the reason it gave
them), then every line whose job did not succeed, and every line that never went out (the
batch was cancelled or expired first: `batch_cancelled`, `batch_expired`). So completed +
failed == total, and every failed line has an error line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from apps.intake.batches.counts import BatchCounts
from apps.intake.batches.files import BatchFiles, OutputFile, windows
from apps.intake.batches.lines import custom_id_of, error_line, result_line
from apps.intake.batches.shapes import (
    BatchStatus,
    Endpoint,
    StoredBatch,
    StoredFile,
    job_id_of,
    now,
)
from apps.intake.batches.store import BatchStore
from jobrelay import keys
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

_NEVER_RAN = {
    BatchStatus.CANCELLED: ("batch_cancelled", "the batch was cancelled before this line ran"),
    BatchStatus.EXPIRED: ("batch_expired", "the batch expired before this line ran"),
    BatchStatus.COMPLETED: ("job_missing", "the line's job was not found"),
}


class Finalize:
    def __init__(
        self,
        store: BatchStore,
        files: BatchFiles,
        counts: BatchCounts,
        jobs: JobStore,
        status_base_url: str,
    ) -> None:
        self._store, self._files, self._counts, self._jobs = store, files, counts, jobs
        self._status_base_url = status_base_url

    async def __call__(self, seen: StoredBatch, source: StoredFile) -> None:
        batch = await self._store.get(seen.id)  # as it is now: cancelled or expired meanwhile?
        if batch is None:
            return
        tally = await self._counts.read(batch.id)
        total = batch.request_counts.total
        if batch.status.terminal or tally.completed + tally.failed < total:
            return  # done already, or lines still running
        end = batch.ends_as or BatchStatus.COMPLETED
        if end is BatchStatus.COMPLETED:
            _, mine = await self._store.update(batch.id, _finalizing)
            if not mine:
                return
        output = OutputFile(self._store.state, batch.tenant, "output")
        errors = OutputFile(self._store.state, batch.tenant, "errors")
        await self._fill(batch, source, end, output, errors)
        output_id, error_id = await output.finish(), await errors.finish()
        await self._store.update(batch.id, _ended(end, output_id, error_id))
        log.info(
            "batch %s %s: %d output lines, %d error lines",
            batch.id,
            end,
            output.lines,
            errors.lines,
        )

    async def _fill(
        self,
        batch: StoredBatch,
        source: StoredFile,
        end: BatchStatus,
        output: OutputFile,
        errors: OutputFile,
    ) -> None:
        refused = await self._refused(batch, errors)
        lines = self._files.lines(source, 1, 0)
        kept = ((number, text) async for number, text, _ in lines if not refused >> number & 1)
        async for window in windows(kept):
            await self._write(batch, end, window, output, errors)

    async def _refused(self, batch: StoredBatch, errors: OutputFile) -> int:
        """Copy the refused lines into the error file; a bitmap of their line numbers."""
        fan = await self._store.fanout(batch.id)
        bits = 0
        for first_line in fan.refused_steps:
            item = await self._store.state.get(keys.batch_refused(batch.id, first_line))
            if item is None:
                continue
            for text in item.data.splitlines():
                line = ErrorLine.of(text)
                if not bits >> line.number & 1:
                    await errors.add(line.body)
                bits |= 1 << line.number
        return bits

    async def _write(
        self,
        batch: StoredBatch,
        end: BatchStatus,
        window: list[tuple[int, bytes]],
        output: OutputFile,
        errors: OutputFile,
    ) -> None:
        records = await self._jobs.get_many([job_id_of(batch.id, n) for n, _ in window])
        endpoint = Endpoint(batch.endpoint)
        for number, text in window:
            record = records.get(job_id_of(batch.id, number))
            if record is None:
                code, message = _NEVER_RAN[end]
                await errors.add(error_line(custom_id_of(text), code, message, number))
                continue
            line = result_line(record, endpoint, self._status_base_url)
            await (output if line["error"] is None else errors).add(line)


class ErrorLine:
    """A refused line as the fan-out stored it (lines.Refused.error_line)."""

    def __init__(self, number: int, body: dict[str, Any]) -> None:
        self.number, self.body = number, body

    @classmethod
    def of(cls, text: bytes) -> ErrorLine:
        body = json.loads(text)
        return cls(int(body["error"]["line"]), body)


def _ended(
    end: BatchStatus, output_id: str | None, error_id: str | None
) -> Callable[[StoredBatch], StoredBatch | None]:
    def ended(current: StoredBatch) -> StoredBatch | None:
        if current.status.terminal:
            return None
        stamp = {
            BatchStatus.COMPLETED: "completed_at",
            BatchStatus.CANCELLED: "cancelled_at",
            BatchStatus.EXPIRED: "expired_at",
        }[end]
        update: dict[str, Any] = {
            "status": end,
            "output_file_id": output_id,
            "error_file_id": error_id,
            stamp: now(),
        }
        return current.model_copy(update=update)

    return ended


# A finalize under way this long is taken to have died with its replica: another takes over.
TAKEOVER_SECONDS = 120


def _finalizing(batch: StoredBatch) -> StoredBatch | None:
    if batch.status is BatchStatus.FINALIZING:
        if now() - (batch.finalizing_at or 0) < TAKEOVER_SECONDS:
            return None  # another step is writing the files
    elif batch.status is not BatchStatus.IN_PROGRESS:
        return None
    return batch.model_copy(update={"status": BatchStatus.FINALIZING, "finalizing_at": now()})
