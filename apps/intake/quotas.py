"""Per-tenant quotas: submissions per minute and jobs waiting; a Limit (jobrelay.limits) that
admits a submit or refuses it with QuotaExceeded, which intake answers `429`.

Every intake replica keeps to the same numbers because they live in the state store: one
ledger per tenant (`quota:{tenant}`, apps/intake/ledger.py), written with an ETag, so two
replicas merging their counts cannot overwrite each other: the loser rereads and merges
again.

A submit is decided on this replica's view of the ledger (the ledger as last synced, plus
what this replica charged since), in memory, and the charges are written behind, merged into
the ledger every SYNC_SECONDS while there are any: a busy tenant costs a read and a write per
interval per replica, not per submit. A view older than STALE_SECONDS is synced before it
decides. What that costs in exactness, stated: across replicas, a tenant may go over a limit
by what the other replicas accepted in their last interval, and a replica that dies forgets
the charges it had not yet written. Within one replica the limits are exact.

The waiting count is the set of the tenant's job ids accepted and not yet seen to leave
`queued`, not a counter, because a counter drifts for good when a process dies between two
steps and nothing could tell which units are stale. Nothing tells the ledger when a job
starts (that would be an event per job, for every job): instead, once the set is large
enough to matter, or full, and at most once per RECHECK_SECONDS, its jobs are looked up in
one bulk read when the ledger is synced, and those no longer waiting are dropped. A job whose
record is absent is dropped once it is older than a submit can take to store its record.

A job counts while it has never started: a job a worker hands back for a retry is the
system's work, not a new submission.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from apps.intake.ledger import Ledger
from apps.intake.settings import QuotaSettings, TenantLimits
from jobrelay import keys
from jobrelay.conflicts import Conflict, backoff
from jobrelay.constants import MAX_JOB_LIFETIME_SECONDS
from jobrelay.contract import JobStatus
from jobrelay.limits import LimitReached
from jobrelay.state import State
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

# How often a replica writes the charges it made, while it makes any.
SYNC_SECONDS = 0.2
# A view older than this is synced before it decides a submit (a tenant idle here for a while
# may have been busy on another replica).
STALE_SECONDS = 1.0
# An entry whose job has no record yet may belong to a submit still between its charge and
# storing its job: it is dropped only once older than this (far past the store window).
_SETTLE_SECONDS = 30
# The waiting set is checked against the job records once it has this many entries (or is
# full), at most once per RECHECK_SECONDS. Also the Retry-After of `too_many_queued_jobs`.
_CHECK_ABOVE = 64
RECHECK_SECONDS = 1
# Merges lost to other replicas before a sync gives up for this interval.
_MAX_ATTEMPTS = 20
# The ledger outlives its oldest possible waiting job, then goes with an idle tenant.
_LEDGER_TTL_SECONDS = MAX_JOB_LIFETIME_SECONDS + 3600

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@dataclass(frozen=True)
class RateHeaders:
    """The per-minute limit as a client sees it, on every charged submit and every 429.

    `X-RateLimit-Reset` is in seconds from now (like Retry-After, not an epoch time): until
    the whole limit is free again. Retry-After says when the next submission fits.
    """

    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        values = map(str, (self.limit, self.remaining, self.reset))
        return dict(zip(RATE_HEADERS, values, strict=True))


class QuotaExceeded(LimitReached):
    """Over the tenant's quota: `rate_limited` (submissions per minute) or
    `too_many_queued_jobs` (jobs waiting to start). Nothing was charged."""

    def __init__(self, code: str, message: str, retry_after: int, rate: RateHeaders | None):
        super().__init__(code, message, retry_after)
        self.rate = rate  # the per-minute quota as it stands, for the refusal's headers


class Submit(NamedTuple):
    """A job submitted by a tenant: what the quotas admit."""

    tenant: str
    job_id: str


@dataclass(frozen=True, slots=True)
class Charged:
    """An admitted submit: the per-minute quota after it (None: the tenant has no such
    limit, or was not charged). Nothing to give back: a charge stays spent, and the waiting
    count drops as the job starts."""

    rate: RateHeaders | None

    def release(self) -> None:
        return None


@dataclass(eq=False)
class _Book:
    """One tenant's quota as this replica sees it."""

    view: Ledger = field(default_factory=Ledger)  # the ledger as synced, plus `unsent`
    synced_at: float = -math.inf  # time.monotonic() of the last sync
    unsent: list[tuple[str, float]] = field(default_factory=list)  # (job id, unix time)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flushing: asyncio.Task[None] | None = None


class Quotas:
    """Owned by intake's lifespan: its books and flushes are per process."""

    def __init__(self, state: State, jobs: JobStore, settings: QuotaSettings) -> None:
        self._state = state
        self._jobs = jobs
        self._settings = settings
        self._books: dict[str, _Book] = {}

    async def admit(self, subject: Submit, deadline: datetime | None = None) -> Charged:
        """Count the job as submitted and waiting, or raise QuotaExceeded and count nothing.

        Never waits, whatever `deadline` says: a submit is answered at once, and the client
        retries after the refusal's `retry_after`.
        """
        tenant, job_id = subject.tenant, subject.job_id
        limits = self._settings.limits(tenant)
        if limits.submissions_per_minute is None and limits.queued_jobs is None:
            return Charged(None)
        book = await self._fresh(tenant)
        now = time.time()
        rate = _rate(book.view, limits.submissions_per_minute, now)
        if _full(book.view, limits):
            if _due(book.view, now):  # the set may hold jobs that have started since
                await self._sync(tenant, book, check=True)
            if _full(book.view, limits):
                raise _queue_full(limits.queued_jobs or 0, rate)
        book.view = _charged(book.view, limits, job_id, now)
        book.unsent.append((job_id, now))
        if book.flushing is None:
            book.flushing = asyncio.get_running_loop().create_task(self._flush(tenant, book))
        rpm = limits.submissions_per_minute
        if rpm is None:
            return Charged(None)
        return Charged(RateHeaders(rpm, book.view.remaining(now, rpm), book.view.reset_after(now)))

    async def refuse_if_full(self, tenant: str) -> None:
        """QuotaExceeded now if the tenant has no room: no charge.

        Before an upload is read, so a tenant over its quota cannot make intake store a file
        only to delete it. Not for a request with an Idempotency-Key: that may be a replay,
        which gets its job even at the limit. A full queue due for its check is let through:
        the charge that follows checks it.
        """
        limits = self._settings.limits(tenant)
        if limits.submissions_per_minute is None and limits.queued_jobs is None:
            return
        book = await self._fresh(tenant)
        now = time.time()
        rate = _rate(book.view, limits.submissions_per_minute, now)
        if _full(book.view, limits) and not _due(book.view, now):
            raise _queue_full(limits.queued_jobs or 0, rate)

    async def _fresh(self, tenant: str) -> _Book:
        book = self._books.setdefault(tenant, _Book())
        asked = time.monotonic()
        if asked - book.synced_at > STALE_SECONDS:
            # Submits that find the view stale together wait for one sync between them.
            await self._sync(tenant, book, check=False, unless_since=asked)
        return book

    async def _flush(self, tenant: str, book: _Book) -> None:
        """Write what was charged, every SYNC_SECONDS while there is any."""
        try:
            while book.unsent:
                await asyncio.sleep(SYNC_SECONDS)
                try:
                    await self._sync(tenant, book, check=False)
                except Exception:  # a store down: the charges wait for the next interval
                    log.warning("tenant=%s quota charges not written yet", tenant, exc_info=True)
        finally:
            book.flushing = None

    async def _sync(
        self, tenant: str, book: _Book, check: bool, unless_since: float | None = None
    ) -> None:
        """Merge this replica's unsent charges into the shared ledger and take it as the
        view; the waiting set is checked against the job records on the way when due (or
        `check` asks for it). `unless_since`: nothing to do if a sync ended after it."""
        async with book.lock:
            if unless_since is not None and book.synced_at >= unless_since:
                return
            for attempt in range(_MAX_ATTEMPTS):
                sending = list(book.unsent)
                item = await self._state.get(keys.quota(tenant))
                now = time.time()
                ledger = Ledger.load(item.data if item else None).at(now)
                ledger = ledger.waiting(now, MAX_JOB_LIFETIME_SECONDS)
                for job_id, at in sending:
                    ledger = ledger.count_submission(at).add_job(job_id, at)
                ledger = await self._checked(ledger, now, check)
                try:
                    await self._state.write(
                        keys.quota(tenant),
                        ledger.dump(),
                        item.etag if item else None,
                        _LEDGER_TTL_SECONDS,
                    )
                except Conflict:
                    await asyncio.sleep(backoff(attempt))
                    continue  # another replica merged first: merge into theirs
                sent = len(sending)
                del book.unsent[:sent]
                # Charges made while this sync was on its way are in the view still.
                for job_id, at in book.unsent:
                    ledger = ledger.count_submission(at).add_job(job_id, at)
                book.view, book.synced_at = ledger, time.monotonic()
                return
            log.warning("tenant=%s quota ledger too contended; charges written later", tenant)

    async def _checked(self, ledger: Ledger, now: float, asked: bool) -> Ledger:
        """Without the entries whose jobs no longer wait, when the set is due for a check."""
        size = len(ledger.queued)
        if not (asked or size >= _CHECK_ABOVE) or not _due(ledger, now):
            return ledger
        statuses = await self._jobs.statuses(list(ledger.queued))

        def waits(job: str, added: int) -> bool:
            if job not in statuses:
                return True  # unreadable now: counted, since a failed read must never admit
            status = statuses[job]
            if status is None:  # no record: not stored yet, or never will be
                return added > now - _SETTLE_SECONDS
            return status is JobStatus.QUEUED

        gone = {job for job, added in ledger.queued.items() if not waits(job, added)}
        return replace(ledger.without(gone), checked=now)


def _due(ledger: Ledger, now: float) -> bool:
    return now - ledger.checked >= RECHECK_SECONDS


def _full(ledger: Ledger, limits: TenantLimits) -> bool:
    return limits.queued_jobs is not None and len(ledger.queued) >= limits.queued_jobs


def _charged(ledger: Ledger, limits: TenantLimits, job_id: str, now: float) -> Ledger:
    if limits.submissions_per_minute is not None:
        ledger = ledger.count_submission(now)
    if limits.queued_jobs is not None:
        ledger = ledger.add_job(job_id, now)
    return ledger


def _rate(ledger: Ledger, rpm: int | None, now: float) -> RateHeaders | None:
    """The per-minute quota before this submit; QuotaExceeded if it has no room."""
    if rpm is None:
        return None
    rate = RateHeaders(rpm, ledger.remaining(now, rpm), ledger.reset_after(now))
    if rate.remaining < 1:
        wait = ledger.retry_after(now, rpm)
        raise QuotaExceeded(
            "rate_limited",
            f"this tenant may submit {rpm} jobs per minute; retry in {wait} s",
            wait,
            rate,
        )
    return rate


def _queue_full(cap: int, rate: RateHeaders | None) -> QuotaExceeded:
    return QuotaExceeded(
        "too_many_queued_jobs",
        f"{cap} jobs of this tenant are waiting to start; submit more once some have",
        RECHECK_SECONDS,
        rate,
    )
