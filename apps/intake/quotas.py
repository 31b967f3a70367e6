"""Per-tenant quotas: submissions per minute and jobs waiting, answered `429` past either.

Every intake replica keeps to the same numbers because they live in the state store: one
ledger per tenant (`quota:{tenant}`, apps/intake/ledger.py), read once and written once per
batch of submits with an ETag, so the two limits are checked and charged together and two
replicas racing for the last slot cannot both win: the loser rereads and decides again.

The waiting count is the set of the tenant's job ids accepted and not yet seen to leave
`queued`, not a counter, because a counter drifts for good when a process dies between two
steps and nothing could tell which units are stale. Nothing tells the ledger when a job
starts (that would be an event per job, for every job): instead, once the set is large
enough to matter, or full, and at most once a second, its jobs are looked up in one bulk
read and those no longer waiting are dropped. A job whose record is absent is dropped once
it is older than a submit can take to store its record. So the set heals itself, and a
tenant far below its cap costs no more than the ledger's read and write.

A job counts while it has never started: a job a worker hands back for a retry, or one an
operator replays from the dead letters, is the system's work, not a new submission.

Changes are group-committed: concurrent submits of one tenant in one replica queue, and
whoever holds the tenant's lock applies every queued change in one read and one write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace

from apps.intake.ledger import Ledger
from apps.intake.settings import QuotaSettings, TenantLimits
from jobrelay import keys
from jobrelay.constants import MAX_JOB_LIFETIME_SECONDS
from jobrelay.contract import JobStatus
from jobrelay.errors import ApiError
from jobrelay.state import Conflict, State, backoff
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

# An entry whose job has no record yet may belong to a submit still between its charge and
# storing its job: it is dropped only once older than this (far past the store window).
_SETTLE_SECONDS = 30
# The waiting set is checked against the job records once it has this many entries (or is
# full), and at most once per _RECHECK_SECONDS: one bulk read per tenant per interval,
# whatever the rate of submits. Also the Retry-After of a `too_many_queued_jobs`.
_CHECK_ABOVE = 64
_RECHECK_SECONDS = 1
# Writes lost to other replicas before a batch gives up with 503.
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
        return dict(
            zip(RATE_HEADERS, map(str, (self.limit, self.remaining, self.reset)), strict=True)
        )


@dataclass(eq=False)
class _Charge:
    job_id: str
    limits: TenantLimits
    outcome: asyncio.Future[RateHeaders | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Quotas:
    """Owned by intake's lifespan: its queues and locks are per process."""

    def __init__(self, state: State, jobs: JobStore, settings: QuotaSettings) -> None:
        self._state = state
        self._jobs = jobs
        self._settings = settings
        self._queued: defaultdict[str, list[_Charge]] = defaultdict(list)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def charge(self, tenant: str, job_id: str) -> RateHeaders | None:
        """Count `job_id` as submitted and waiting, or raise ApiError 429 and count nothing.

        The headers to answer with; None when the tenant has no per-minute limit.
        """
        limits = self._settings.limits(tenant)
        if limits.submissions_per_minute is None and limits.queued_jobs is None:
            return None
        charge = _Charge(job_id, limits)
        self._queued[tenant].append(charge)
        async with self._locks[tenant]:
            if not charge.outcome.done():
                batch = self._queued.pop(tenant, [])
                try:
                    await self._apply(tenant, batch)
                except BaseException:
                    # Cancelled, or the store failed: the charges of others that this one
                    # did not settle go back in the queue for the next holder of the lock.
                    unsettled = [c for c in batch if c is not charge and not c.outcome.done()]
                    self._queued[tenant][:0] = unsettled
                    raise
        return charge.outcome.result()

    async def refuse_if_full(self, tenant: str) -> None:
        """429 now if the tenant's ledger already has no room: a read, no charge.

        Before an upload is read, so a tenant over its quota cannot make intake store a file
        only to delete it. Not for a request with an Idempotency-Key: that may be a replay,
        which gets its job even at the limit. A full queue due for its check is let through:
        the charge that follows checks it.
        """
        limits = self._settings.limits(tenant)
        if limits.submissions_per_minute is None and limits.queued_jobs is None:
            return
        item = await self._state.get(keys.quota(tenant))
        now = time.time()
        ledger = Ledger.load(item.data if item else None).at(now)
        rate = _rate(ledger, limits.submissions_per_minute, now)
        cap = limits.queued_jobs
        if cap is not None and len(ledger.queued) >= cap and not _due(ledger, now):
            raise _queue_full(cap, rate)

    async def _apply(self, tenant: str, batch: list[_Charge]) -> None:
        """Every charge in `batch` in one read and one write of the ledger; each outcome set."""
        for attempt in range(_MAX_ATTEMPTS):
            item = await self._state.get(keys.quota(tenant))
            now = time.time()
            ledger = Ledger.load(item.data if item else None).at(now)
            ledger = ledger.waiting(now, MAX_JOB_LIFETIME_SECONDS)
            ledger = await self._checked(ledger, _cap(batch), now)
            outcomes: dict[_Charge, RateHeaders | ApiError | None] = {}
            for charge in batch:
                ledger, outcomes[charge] = _charged(ledger, charge, now)
            try:
                await self._state.write(
                    keys.quota(tenant),
                    ledger.dump(),
                    item.etag if item else None,
                    _LEDGER_TTL_SECONDS,
                )
            except Conflict:
                await asyncio.sleep(backoff(attempt))
                continue  # another replica wrote first: decide every charge again
            _settle(outcomes)
            return
        busy = ApiError(503, "quota_busy", "too many submits at once; retry", {"Retry-After": "1"})
        _settle(dict.fromkeys(batch, busy))

    async def _checked(self, ledger: Ledger, cap: int | None, now: float) -> Ledger:
        """Without the entries whose jobs no longer wait, when the set is due for a check."""
        size = len(ledger.queued)
        big = size >= _CHECK_ABOVE or (cap is not None and size >= cap)
        if not big or not _due(ledger, now):
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
        if gone:
            log.debug("quota ledger: %d of %d entries no longer waiting", len(gone), size)
        return replace(ledger.without(gone), checked=now)


def _due(ledger: Ledger, now: float) -> bool:
    return now - ledger.checked >= _RECHECK_SECONDS


def _cap(batch: list[_Charge]) -> int | None:
    caps = [c.limits.queued_jobs for c in batch if c.limits.queued_jobs is not None]
    return min(caps) if caps else None


def _charged(
    ledger: Ledger, charge: _Charge, now: float
) -> tuple[Ledger, RateHeaders | ApiError | None]:
    """`ledger` with `charge` counted and its headers, or as it is and the 429."""
    rpm, cap = charge.limits.submissions_per_minute, charge.limits.queued_jobs
    try:
        rate = _rate(ledger, rpm, now)
    except ApiError as refused:
        return ledger, refused
    if cap is not None and len(ledger.queued) >= cap:
        return ledger, _queue_full(cap, rate)
    if rpm is not None:
        ledger = ledger.count_submission(now)
    if cap is not None:
        ledger = ledger.add_job(charge.job_id, now)
    if rpm is None:
        return ledger, None
    return ledger, RateHeaders(rpm, ledger.remaining(now, rpm), ledger.reset_after(now))


def _rate(ledger: Ledger, rpm: int | None, now: float) -> RateHeaders | None:
    """The per-minute quota before this submit; ApiError 429 if it has no room."""
    if rpm is None:
        return None
    rate = RateHeaders(rpm, ledger.remaining(now, rpm), ledger.reset_after(now))
    if rate.remaining < 1:
        wait = ledger.retry_after(now, rpm)
        raise ApiError(
            429,
            "rate_limited",
            f"this tenant may submit {rpm} jobs per minute; retry in {wait} s",
            {"Retry-After": str(wait), **rate.headers()},
        )
    return rate


def _settle(outcomes: dict[_Charge, RateHeaders | ApiError | None]) -> None:
    for charge, outcome in outcomes.items():
        if isinstance(outcome, ApiError):
            charge.outcome.set_exception(outcome)
        else:
            charge.outcome.set_result(outcome)


def _queue_full(cap: int, rate: RateHeaders | None) -> ApiError:
    return ApiError(
        429,
        "too_many_queued_jobs",
        f"{cap} jobs of this tenant are waiting to start; submit more once some have",
        {"Retry-After": str(_RECHECK_SECONDS), **(rate.headers() if rate else {})},
    )
