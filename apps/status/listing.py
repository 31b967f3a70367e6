"""GET /v1/jobs: a tenant's jobs, newest first, from its index (jobrelay.job_index), never
from a scan of the store.

A request walks the index back from its cursor, drops the entries the index alone can rule
out (task, creation time, metadata), and reads the records of the rest in bulk to filter by
status (which the index does not keep) and to answer with them. An entry whose record is
gone (expired) is skipped. One request examines at most MAX_SCAN entries: a sparse filter
then answers with fewer results, or none, and a cursor to go on from, so no request walks
a tenant's whole history.

A cursor is a position in the index (positions never change), base64url-encoded JSON, so
new jobs accepted while a client pages do not shift what it sees.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime

from jobrelay.contract import JobRecord, JobStatus
from jobrelay.job_index import Entry, JobIndex, Positioned
from jobrelay.store import JobStore

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# The most index entries one request examines (and records it may read).
MAX_SCAN = 1024
# The most entries examined per round; the records of those that pass go in one bulk read.
_ROUND = 256
# Intake replicas' clocks may differ: entries are in accept order, which is creation order
# only up to this skew, so a `created_after` walk stops this far past its bound.
_CLOCK_SKEW_SECONDS = 60.0


class BadCursor(ValueError):
    """A cursor this server did not make (or one mangled on its way)."""


def encode_cursor(before: int) -> str:
    raw = json.dumps({"before": before}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        before = json.loads(raw)["before"]
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise BadCursor(cursor) from exc
    if not isinstance(before, int) or isinstance(before, bool) or before < 0:
        raise BadCursor(cursor)
    return before


@dataclass(frozen=True)
class Filters:
    """What a listing keeps; an empty filter keeps everything."""

    statuses: frozenset[JobStatus] = frozenset()
    task: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    metadata: dict[str, str] = field(default_factory=dict)

    def admits_entry(self, entry: Entry) -> bool:
        """False only for an entry the index shows this filter rules out."""
        if self.task is not None and entry.task != self.task:
            return False
        if self.created_after is not None and entry.created < self.created_after.timestamp():
            return False
        if self.created_before is not None and entry.created >= self.created_before.timestamp():
            return False
        return entry.metadata is None or self._metadata_matches(entry.metadata)

    def admits(self, record: JobRecord) -> bool:
        if self.statuses and record.status not in self.statuses:
            return False
        if self.task is not None and record.task != self.task:
            return False
        if self.created_after is not None and record.created_at < self.created_after:
            return False
        if self.created_before is not None and record.created_at >= self.created_before:
            return False
        return self._metadata_matches(record.metadata)

    def past(self, entry: Entry) -> bool:
        """Whether every entry older than this one is surely before `created_after`."""
        if self.created_after is None:
            return False
        return entry.created < self.created_after.timestamp() - _CLOCK_SKEW_SECONDS

    def _metadata_matches(self, metadata: dict[str, str]) -> bool:
        return all(metadata.get(key) == value for key, value in self.metadata.items())


@dataclass(frozen=True, slots=True)
class Listed:
    records: list[JobRecord]
    before: int | None  # the next page's cursor position; None: nothing older to examine


async def list_jobs(
    index: JobIndex,
    jobs: JobStore,
    tenant: str,
    filters: Filters,
    limit: int,
    before: int | None,
) -> Listed:
    """Up to `limit` of the tenant's jobs that pass `filters`, newest first, below the
    cursor position `before` (None: from the newest)."""
    head = await index.head(tenant)
    if head is None:
        return Listed([], None)
    position = head.count if before is None else min(before, head.count)
    found: list[JobRecord] = []
    scanned = 0
    # Records are what a listing pays for (they carry results: an embedding is kilobytes),
    # so the first round reads no more than the page needs, and rounds grow only while
    # filters leave them short.
    size = limit
    while position > 0 and scanned < MAX_SCAN:
        entries = await index.before(tenant, head, position, min(size, MAX_SCAN - scanned))
        size = min(size * 2, _ROUND)
        if not entries:
            return Listed(found, None)  # the rest expired
        scanned += len(entries)
        kept, ended = _candidates(entries, filters)
        records = await jobs.get_many([p.entry.id for p in kept]) if kept else {}
        for positioned in kept:
            record = records.get(positioned.entry.id)
            # No record: expired (or never stored). Another tenant's: never shown.
            if record is None or record.tenant != tenant or not filters.admits(record):
                continue
            found.append(record)
            if len(found) == limit:
                return Listed(found, positioned.position or None)
        position = 0 if ended else entries[-1].position
    return Listed(found, position or None)


def _candidates(entries: list[Positioned], filters: Filters) -> tuple[list[Positioned], bool]:
    """The entries worth reading a record for, and whether the walk may stop after them."""
    kept: list[Positioned] = []
    for positioned in entries:
        if filters.past(positioned.entry):
            return kept, True
        if filters.admits_entry(positioned.entry):
            kept.append(positioned)
    return kept, False
