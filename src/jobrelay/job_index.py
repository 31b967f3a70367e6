"""A tenant's jobs in the order intake accepted them, so GET /v1/jobs lists them without a
scan of the store (the query API is alpha, and Redis without RediSearch has none).

The index is append-only: intake adds an entry per accepted job (its id, creation time,
task and metadata: the fields that never change), and nothing else ever writes it. A job's
status is not in it, since keeping it there would cost a write per transition: a listing
reads the records of the entries it shows (jobrelay.store), and filters by status there.

Layout, per tenant: pages of PAGE_SIZE entries, numbered from 0. The head key holds the page
being filled (`tail`, page `page`); every older page is its own key, written once and never
again. An entry's position (`page * PAGE_SIZE + index`) never changes, so a cursor is a
position.

An append is a guarded read-modify-write of the head. The append that fills a page seals it
into the head's `previous`; the next append writes `previous` to its own key and then the
head without it. That page's content comes from a head version that won its write, so every
writer racing to move it writes the same bytes, and no head ever drops a page before its key
is there. A head so carries half a page on average (every append reads and writes all of
it), not the page and a half it would if `previous` stayed until the next seal.

Appends of one process are group-committed (jobrelay.batching): while one append is on its
way, the next ones gather and go together, so a burst of submits costs a few head writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from dapr.clients.exceptions import DaprInternalError
from pydantic import BaseModel, Field

from jobrelay import keys
from jobrelay.batching import Coalescer
from jobrelay.conflicts import Conflict, Contended, backoff
from jobrelay.constants import MAX_JOB_LIFETIME_SECONDS
from jobrelay.contract import JobRecord
from jobrelay.state import UPDATE_TRIES, State

log = logging.getLogger(__name__)

PAGE_SIZE = 128
# Metadata is kept in an entry only up to this many bytes of JSON (it may reach ~18 KiB per
# job, issue 17): a page must stay far below daprd's 4 MiB message limit. An entry without
# it is filtered on its record instead.
_ENTRY_METADATA_BYTES = 256
# A page outlives every record it names: a record lasts at most a job's lifetime plus the
# retention after it ends; the margin covers a job that runs long after it started.
_TTL_MARGIN_SECONDS = 24 * 3600


class Entry(BaseModel):
    """One accepted job, as the index keeps it."""

    id: str
    created: float = Field(description="Unix seconds: when intake accepted the job.")
    task: str
    metadata: dict[str, str] | None = Field(
        default=None, description="None: too big to keep here; the record has it."
    )

    @classmethod
    def of(cls, record: JobRecord) -> Entry:
        metadata: dict[str, str] | None = record.metadata
        if len(json.dumps(record.metadata)) > _ENTRY_METADATA_BYTES:
            metadata = None
        return cls(
            id=record.id,
            created=record.created_at.timestamp(),
            task=record.task,
            metadata=metadata,
        )


class _Page(BaseModel):
    entries: list[Entry]


class Head(BaseModel):
    page: int = 0  # the number of the page being filled
    tail: list[Entry] = Field(default_factory=list)  # that page's entries, oldest first
    # Page `page - 1`, full, until the next append has written it to its own key.
    previous: list[Entry] = Field(default_factory=list)

    @property
    def count(self) -> int:
        """Entries ever added: the position the next one gets."""
        return self.page * PAGE_SIZE + len(self.tail)


def appended(head: Head, entries: Sequence[Entry], known: Collection[str] = ()) -> Head:
    """`head` with `entries` (at most PAGE_SIZE) added and without `previous` (the caller
    has written that page to its own key), sealing the tail into `previous` if it fills.
    Entries already in the head, or named in `known`, are left out: an append retried after
    a write that went in unseen."""
    if len(entries) > PAGE_SIZE:
        raise ValueError(f"at most {PAGE_SIZE} entries per append")
    there = {e.id for e in head.tail} | {e.id for e in head.previous} | set(known)
    combined = [*head.tail, *(e for e in entries if e.id not in there)]
    if len(combined) <= PAGE_SIZE:
        return Head(page=head.page, tail=combined)
    return Head(page=head.page + 1, tail=combined[PAGE_SIZE:], previous=combined[:PAGE_SIZE])


@dataclass(frozen=True, slots=True)
class Positioned:
    position: int  # never changes: a cursor names it
    entry: Entry


def index_ttl(retention_seconds: int) -> int:
    return MAX_JOB_LIFETIME_SECONDS + retention_seconds + _TTL_MARGIN_SECONDS


class JobIndex:
    """Intake adds to it (`add`, or `add_many` for a batch); status reads it (`head`,
    `before`)."""

    def __init__(self, state: State, retention_seconds: int) -> None:
        self._state = state
        self._ttl = index_ttl(retention_seconds)
        # One flush at a time: two of one process would only race each other for the head.
        self._adds: Coalescer[tuple[str, Entry], None] = Coalescer(
            self._add_batch, lanes=1, largest=4 * PAGE_SIZE
        )

    async def add(self, record: JobRecord) -> None:
        """Index an accepted job; returns once its entry is in."""
        await self._adds((record.tenant, Entry.of(record)))

    async def add_many(self, tenant: str, entries: Sequence[Entry]) -> None:
        """Index many jobs of one tenant, in this order, a page's worth per head write."""
        for start in range(0, len(entries), PAGE_SIZE):
            await self._append(tenant, entries[start : start + PAGE_SIZE])

    async def _add_batch(self, adds: list[tuple[str, Entry]]) -> list[BaseException | None]:
        by_tenant: dict[str, list[Entry]] = defaultdict(list)
        for tenant, entry in adds:
            by_tenant[tenant].append(entry)
        tenants = list(by_tenant)
        outcomes = await asyncio.gather(
            *(self.add_many(t, by_tenant[t]) for t in tenants), return_exceptions=True
        )
        failed = {t: o for t, o in zip(tenants, outcomes, strict=True) if o is not None}
        for tenant, exc in failed.items():
            log.warning("tenant=%s job index append failed: %r", tenant, exc)
        return [failed.get(tenant) for tenant, _ in adds]

    async def _append(self, tenant: str, entries: Sequence[Entry]) -> None:
        key = keys.index_head(tenant)
        for attempt in range(UPDATE_TRIES):
            item = await self._state.get(key)
            head = Head.model_validate_json(item.data) if item else Head()
            known: set[str] = set()
            if head.previous:
                # Before the head that drops it: no head may drop a page not written yet.
                page = _Page(entries=head.previous).model_dump_json()
                await self._state.put(keys.index_page(tenant, head.page - 1), page, self._ttl)
            elif attempt and head.page > 0:
                # A retry: this append may have gone in unseen and been sealed since.
                sealed = await self._state.get(keys.index_page(tenant, head.page - 1))
                if sealed is not None:
                    known = {e.id for e in _Page.model_validate_json(sealed.data).entries}
            new = appended(head, entries, known)
            try:
                await self._state.write(
                    key, new.model_dump_json(), item.etag if item else None, self._ttl
                )
            except Conflict:
                await asyncio.sleep(backoff(attempt))
                continue
            return
        raise Contended(key)

    async def head(self, tenant: str) -> Head | None:
        item = await self._state.get(keys.index_head(tenant))
        return Head.model_validate_json(item.data) if item else None

    async def before(self, tenant: str, head: Head, position: int, most: int) -> list[Positioned]:
        """Up to `most` entries at positions below `position`, newest first. Stops early at
        a page that expired: every older one expired before it."""
        out: list[Positioned] = []
        pages: dict[int, list[Entry] | None] = {head.page: head.tail}
        if head.previous:
            pages[head.page - 1] = head.previous
        position = min(position, head.count)
        while position > 0 and len(out) < most:
            number = (position - 1) // PAGE_SIZE
            if number not in pages:
                wanted = -(-(most - len(out)) // PAGE_SIZE)  # pages that could still count
                pages.update(await self._pages(tenant, number, wanted))
            entries = pages[number]
            if entries is None:
                break
            offset = min(position - number * PAGE_SIZE, len(entries))
            taken = entries[:offset][::-1][: most - len(out)]
            out += [
                Positioned(number * PAGE_SIZE + offset - 1 - k, entry)
                for k, entry in enumerate(taken)
            ]
            position = number * PAGE_SIZE + offset - len(taken)
            if not taken:
                break
        return out

    async def _pages(self, tenant: str, newest: int, count: int) -> dict[int, list[Entry] | None]:
        """Sealed pages `newest`, `newest - 1`, ... (`count` of them) in one bulk read; None
        for one that is gone."""
        numbers = [n for n in range(newest, newest - count, -1) if n >= 0]
        found = await self._state.get_many(keys.index_page(tenant, n) for n in numbers)
        out: dict[int, list[Entry] | None] = {}
        for n in numbers:
            key = keys.index_page(tenant, n)
            if key not in found:  # unreadable, not absent: no listing may end here
                raise DaprInternalError(f"state {key}: not read")
            item = found[key]
            out[n] = _Page.model_validate_json(item.data).entries if item else None
        return out
