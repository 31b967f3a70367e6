"""Streaming a task's text as the model writes it: tokens buffered into chunks (deltas).

A chunk is flushed every `seconds` (50 ms) after its first token, or once it holds `tokens`
(32) tokens, whichever comes first: one unguarded put per chunk (jobrelay.deltas), never one
per token. Flushes run one after another in the background, so the model's tokens are never
held up by the store; tokens that arrive during a flush go into the next chunk. After each
stored chunk the job's watchers are told (only if it has any) and, at most once per
`output_seconds`, its webhook (only if it asked for `output`).

A flush the store refused keeps its text for the next one, under the same number, so the
chunks stay whole and in order; `close` flushes the rest and raises if the store still
refuses, failing the attempt (retried) rather than leaving a stream with a hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from jobrelay.conflicts import STORE_ERRORS
from jobrelay.contract import JobRecord
from jobrelay.deltas import STREAMING_TASKS, DeltaLog
from jobrelay.events import Events, delta_readers, wants_output
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05
FLUSH_TOKENS = 32
OUTPUT_SECONDS = 0.5
# How often a streaming job's record is reread for streams that began after the claim.
WATCHERS_SECONDS = 1.0

# (the running record, chunk number, its text): store the chunk.
Store = Callable[[JobRecord, int, str], Awaitable[None]]
# (the running record, chunk number, whether to tell the webhook): tell who waits.
Notify = Callable[[JobRecord, int, bool], Awaitable[None]]
# The job's watchers as its record now names them; None if the record is gone.
Watchers = Callable[[], Awaitable[list[str] | None]]


class StreamInterrupted(Exception):
    """The model's stream broke after some of its text was streamed. Not retried within the
    attempt (a retry would stream that text twice): the job goes back to the queue, and its
    next attempt streams afresh under its own `running` (jobrelay.event_ids)."""


class DeltaWriter:
    def __init__(
        self,
        record: JobRecord,
        store: Store,
        notify: Notify,
        *,
        output: bool = False,
        seconds: float = FLUSH_SECONDS,
        tokens: int = FLUSH_TOKENS,
        output_seconds: float = OUTPUT_SECONDS,
        watchers: Watchers | None = None,
        watchers_seconds: float = WATCHERS_SECONDS,
    ) -> None:
        self._record = record  # running: its `seq` names the attempt's chunks
        # Whether anyone reads deltas live (a status replica streaming the job), as the
        # record last read says: the claimed one, then a reread every `watchers_seconds`
        # in the background (a stream mostly opens after the claim). A stream reads the
        # store on its own meanwhile, so this only makes it sooner.
        self._readers = bool(delta_readers(record.watchers))
        self._watchers = watchers
        self._watchers_seconds = watchers_seconds
        self._looked_at = float("-inf")
        self._looking: asyncio.Task[None] | None = None
        self._store = store
        self._notify = notify
        self._output = output
        self._seconds = seconds
        self._tokens = tokens
        self._output_seconds = output_seconds
        self._buffer: list[str] = []
        self._first_at = 0.0
        self._pending = asyncio.Event()  # the buffer holds something (or we are closing)
        self._full = asyncio.Event()  # the buffer holds `tokens` tokens (or we are closing)
        self._closing = False
        self._last_output = float("-inf")
        self.chunks = 0  # stored so far
        self._flusher: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @property
    def started(self) -> bool:
        """Whether any text was handed over (a retry now would repeat it)."""
        return self.chunks > 0 or bool(self._buffer)

    def add(self, text: str) -> None:
        """One token's text (or several); never waits."""
        if not text:
            return
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())
        if not self._buffer:
            self._first_at = asyncio.get_running_loop().time()
            self._pending.set()
        self._buffer.append(text)
        if len(self._buffer) >= self._tokens:
            self._full.set()

    async def close(self) -> None:
        """Flush what is left and wait for it; raises the store's error if it would not
        take it."""
        self._closing = True
        self._pending.set()
        self._full.set()
        if self._flusher is not None:
            await self._flusher
        self._stop_looking()
        if self._error is not None:
            raise self._error

    async def abandon(self) -> None:
        """Stop without flushing (the attempt failed; its text goes nowhere)."""
        self._stop_looking()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def _stop_looking(self) -> None:
        if self._looking is not None:
            self._looking.cancel()

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._pending.wait()
            due = self._first_at + self._seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), max(due - loop.time(), 0.0))
            stored = await self._flush()
            if self._closing and (not self._buffer or not stored):
                return

    async def _flush(self) -> bool:
        if not self._buffer:
            self._pending.clear()
            return True
        taken, self._buffer = self._buffer, []
        if not self._closing:
            self._pending.clear()
            self._full.clear()
        text, n = "".join(taken), self.chunks + 1
        try:
            await self._store(self._record, n, text)
        except STORE_ERRORS as exc:
            # Kept, in front of what came since, for the next flush under the same number.
            self._buffer = [text, *self._buffer]
            self._first_at = asyncio.get_running_loop().time()
            self._pending.set()
            self._error = exc
            log.warning("job_id=%s delta %d not stored yet: %s", self._record.id, n, exc)
            return False
        self._error = None
        self.chunks = n
        now = asyncio.get_running_loop().time()
        output = self._output and now - self._last_output >= self._output_seconds
        if output:
            self._last_output = now
        if self._readers or output:
            await self._notify(self._record, n, output)
        self._look_again(now)
        return True

    def _look_again(self, now: float) -> None:
        """Reread the record's watchers in the background, if it is time to."""
        if self._watchers is None or self._looking is not None:
            return
        if now - self._looked_at >= self._watchers_seconds:
            self._looked_at = now
            self._looking = asyncio.create_task(self._look(self._watchers))

    async def _look(self, watchers: Watchers) -> None:
        try:
            named = await watchers()
        except Exception as exc:  # never the stream's end: the next look may do better,
            # and the streams read the store anyway
            log.info("job_id=%s watchers not reread: %s", self._record.id, exc)
            named = None
        finally:
            self._looking = None
        if named is not None:
            self._record = self._record.model_copy(update={"watchers": named})
            self._readers = bool(delta_readers(named))


class Streams:
    """Makes each streaming job's DeltaWriter, on this worker's store and topics."""

    def __init__(self, deltas: DeltaLog, jobs: JobStore, events: Events) -> None:
        self._deltas = deltas
        self._jobs = jobs
        self._events = events

    def writer(self, claimed: JobRecord) -> DeltaWriter | None:
        """The writer of `claimed`'s text, None for a task that does not stream (the
        default path of every other task stays exactly as it was)."""
        if claimed.task not in STREAMING_TASKS:
            return None

        async def store(record: JobRecord, n: int, text: str) -> None:
            await self._deltas.append(record, n, text, self._jobs.ttl(record))

        async def watchers() -> list[str] | None:
            current = await self._jobs.get(claimed.id)
            return None if current is None else current.record.watchers

        return DeltaWriter(
            claimed, store, self._events.streamed, output=wants_output(claimed), watchers=watchers
        )


@contextlib.asynccontextmanager
async def flushed(deltas: DeltaWriter | None) -> AsyncIterator[None]:
    """Around a task's run: its last chunk stored when it succeeds (before its result is,
    so a stream shows every delta before `succeeded`), its writer stopped when it fails."""
    if deltas is None:
        yield
        return
    try:
        yield
    except BaseException:
        await deltas.abandon()
        raise
    await deltas.close()
