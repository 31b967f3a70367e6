"""Per-tenant quotas: submissions per minute and jobs waiting, answered `429` past either.

Every intake replica keeps to the same numbers because they live in the Dapr state store:
one ledger per tenant (`quota:{tenant}`, apps/intake/ledger.py), read once and written once
per submit with an ETag (first-write), so the two limits are checked and charged together
and two replicas racing for the last slot cannot both win: the loser rereads and decides
again. One key per tenant rather than one per limit or per minute keeps that to two state
calls and makes a charge all-or-nothing without a transaction.

The waiting count is the set of the tenant's job ids accepted and not yet seen leaving
`queued`, not a bare counter, because a counter drifts for good when a process dies between
two steps (after the charge, before the job is stored; after a claim, before the decrement)
and nothing could tell which units are stale. With ids it heals itself:

- intake's `job-events` subscription (one delivery per event across intake's replicas)
  removes a job when any event shows it left `queued`, which is the usual path;
- at the limit, before answering 429, the entries older than `_SETTLE_SECONDS` are checked
  against their job records in one bulk read, and those absent or no longer queued are
  dropped: a lost event or a crash can never make a tenant wait for good. That check runs at
  most every `_RECHECK_SECONDS` per tenant, so a tenant hammering a full queue costs one
  bulk read per interval, not one per request;
- entries older than any queued job can live expire with the ledger's own TTL as backstop.

A job counts while it has never started: a job a worker hands back for a retry, or one an
operator replays from the dead letters, is the system's work, not a new submission.

Cost: the ledger holds about 47 bytes per waiting job, so a tenant at the default cap of
2000 waiting jobs reads and writes about 100 KB per submit; a tenant with few waiting jobs,
a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import lru_cache

from dapr.aio.clients import DaprClient
from dapr.ext.fastapi import DaprApp
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.intake.ledger import Ledger
from jobrelay.constants import (
    JOB_EVENTS_TOPIC,
    JOB_KEY_PREFIX,
    MAX_JOB_LIFETIME_SECONDS,
    PUBSUB,
    QUOTA_KEY_PREFIX,
    STATESTORE,
)
from jobrelay.contract import JobStatus
from jobrelay.errors import DAPR_ERRORS, ApiError
from jobrelay.store import job_key, swap
from jobrelay.subscriptions import RETRY, SUCCESS, read_job_event, subscribe

log = logging.getLogger(__name__)

# An entry younger than this may belong to a submit still between its charge and storing
# its job (an outbox commit takes about a second): the check at the limit leaves it alone.
_SETTLE_SECONDS = 30
# At most one check of a full tenant's entries against the job records per this many
# seconds, and the Retry-After of a `too_many_queued_jobs`: jobs leave the queue as workers
# take them, which no window predicts.
_RECHECK_SECONDS = 5
# Writes lost to another replica before giving up with 503 (each conflict means someone
# else's submit or release went through, so this many is far past any real contention).
_MAX_ATTEMPTS = 50
_BACKOFF_SECONDS = 0.005  # times the attempt number, jittered: racing writers spread out
# The ledger outlives its oldest possible waiting job, then goes with an idle tenant.
_LEDGER_TTL_SECONDS = MAX_JOB_LIFETIME_SECONDS + 3600


class TenantLimits(BaseModel):
    """One tenant's limits; `null` (None) means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    submissions_per_minute: int | None = Field(
        default=None, ge=1, description="Jobs accepted in any sixty seconds."
    )
    queued_jobs: int | None = Field(
        default=None, ge=1, description="Jobs accepted and not yet started."
    )


class QuotaSettings(BaseSettings):
    # `null` in an environment variable turns that default limit off.
    model_config = SettingsConfigDict(
        env_prefix="JOBRELAY_QUOTA_", extra="ignore", frozen=True, env_parse_none_str="null"
    )

    enabled: bool = Field(default=True, description="false: no quotas for anyone.")
    # Generous: a person trying jobrelay, or the test suite, never meets them; they stop one
    # runaway client from filling the queue ahead of every other tenant.
    submissions_per_minute: int | None = Field(
        default=3000, ge=1, description="Every tenant's default; `null` = no limit."
    )
    queued_jobs: int | None = Field(
        default=2000, ge=1, description="Every tenant's default; `null` = no limit."
    )
    tenants: dict[str, TenantLimits] = Field(
        default_factory=dict,
        description='Per-tenant overrides as JSON, e.g. {"acme": {"queued_jobs": 50}}; '
        "a limit left out keeps the default, `null` lifts it.",
    )

    def limits(self, tenant: str) -> TenantLimits:
        if not self.enabled:
            return TenantLimits()
        chosen = {"submissions_per_minute": self.submissions_per_minute}
        chosen["queued_jobs"] = self.queued_jobs
        override = self.tenants.get(tenant)
        if override is not None:
            chosen.update(override.model_dump(exclude_unset=True))
        return TenantLimits.model_validate(chosen)


@lru_cache
def get_quota_settings() -> QuotaSettings:
    return QuotaSettings()


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
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _key(tenant: str) -> str:
    return f"{QUOTA_KEY_PREFIX}{tenant}"


@dataclass(eq=False)
class _Change:
    """A charge (with the tenant's limits) or a release of one job, and its outcome."""

    job_id: str
    limits: TenantLimits | None  # None: a release
    outcome: asyncio.Future[RateHeaders | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


# Group commit, per tenant and process. The ETag keeps replicas from overwriting each other,
# but racing writers inside one replica only make each other start over, and one writer at
# a time still pays a read and a write per job (twice: the charge, then the release when the
# job starts). So changes queue here, and whoever holds the tenant's lock applies every
# queued change in one read and one write; the others find theirs done. 64 clients of one
# tenant on `make run` (2 cores, 15 s, one run each): 68 submits/s without quotas; 27/s and
# 6 % 503 quota_busy with racing writers; 54/s behind a plain lock (docs/benchmarks.md, 8,
# has the batched figures). Conflicts are left to the few other replicas.
_queued_changes: defaultdict[str, list[_Change]] = defaultdict(list)
_ledger_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


class _Refused(Exception):
    """A charge that does not fit: the 429, and the ledger as the check left it."""

    def __init__(self, ledger: Ledger, error: ApiError) -> None:
        self.ledger, self.error = ledger, error


class Quotas:
    def __init__(self, dapr: DaprClient, settings: QuotaSettings, store: str = STATESTORE) -> None:
        self._dapr = dapr
        self._settings = settings
        self._store = store

    async def charge(self, tenant: str, job_id: str) -> RateHeaders | None:
        """Count `job_id` as submitted and waiting, or raise ApiError 429 and count nothing.

        The headers to answer with; None when the tenant has no per-minute limit.
        """
        limits = self._settings.limits(tenant)
        if limits.submissions_per_minute is None and limits.queued_jobs is None:
            return None
        return await self._commit(tenant, _Change(job_id, limits))

    async def _commit(self, tenant: str, change: _Change) -> RateHeaders | None:
        _queued_changes[tenant].append(change)
        async with _ledger_locks[tenant]:
            if not change.outcome.done():
                batch = _queued_changes.pop(tenant, [])
                try:
                    await self._apply(tenant, batch)
                except BaseException:
                    # Cancelled, or the store failed: the changes of others that this one
                    # did not settle go back in the queue for the next holder of the lock.
                    unsettled = [c for c in batch if c is not change and not c.outcome.done()]
                    _queued_changes[tenant][:0] = unsettled
                    raise
        return change.outcome.result()

    async def _apply(self, tenant: str, batch: list[_Change]) -> None:
        """Every change in `batch` in one read and one write of the ledger; each outcome set."""
        released = {c.job_id for c in batch if c.limits is None}
        for attempt in range(_MAX_ATTEMPTS):
            resp = await self._dapr.get_state(self._store, _key(tenant))
            now = time.time()
            stored = Ledger.load(resp.data)
            outcomes: dict[_Change, RateHeaders | ApiError | None] = dict.fromkeys(batch)
            charges = [c for c in batch if c.limits is not None]
            if not charges and not released & stored.queued.keys():
                _settle(outcomes)  # releases of jobs already gone: nothing to write
                return
            ledger = stored.at(now).waiting(now, MAX_JOB_LIFETIME_SECONDS).without(released)
            for charge in charges:
                ledger, outcomes[charge] = await self._charged(ledger, charge, now)
            if await self._write(tenant, ledger, resp.etag if resp.data else None):
                _settle(outcomes)
                return
            # Another replica wrote first: read again and decide every change again.
            await asyncio.sleep(_backoff(attempt))
        busy = ApiError(503, "quota_busy", "too many submits at once; retry", {"Retry-After": "1"})
        for job_id in released:
            log.warning("tenant=%s job_id=%s not released", tenant, job_id)
        _settle({c: None if c.limits is None else busy for c in batch})

    async def _charged(
        self, ledger: Ledger, charge: _Change, now: float
    ) -> tuple[Ledger, RateHeaders | ApiError | None]:
        """`ledger` with `charge` counted and its headers, or as it is and the 429."""
        limits = charge.limits
        assert limits is not None
        rpm, cap = limits.submissions_per_minute, limits.queued_jobs
        try:
            ledger = await self._admit(ledger, limits, now)
        except _Refused as refused:
            # The ledger the check learned from (stale entries dropped, and when) is kept,
            # so the next request need not repeat the check.
            return refused.ledger, refused.error
        if rpm is not None:
            ledger = ledger.count_submission(now)
        if cap is not None:
            ledger = ledger.add_job(charge.job_id, now)
        if rpm is None:
            return ledger, None
        return ledger, RateHeaders(rpm, ledger.remaining(now, rpm), ledger.reset_after(now))

    async def refuse_if_full(self, tenant: str) -> None:
        """429 now if the tenant's ledger already has no room: a read, no charge.

        Before an upload is read, so a tenant over its quota cannot make intake store a
        file only to delete it. Not for a request with an Idempotency-Key: that may be a
        replay, which gets its job even at the limit. A full queue due for its check is let
        through: the charge that follows checks it (that writes).
        """
        limits = self._settings.limits(tenant)
        if limits.submissions_per_minute is None and limits.queued_jobs is None:
            return
        resp = await self._dapr.get_state(self._store, _key(tenant))
        now = time.time()
        ledger = Ledger.load(resp.data).at(now).waiting(now, MAX_JOB_LIFETIME_SECONDS)
        rate = _rate(ledger, limits.submissions_per_minute, now)
        cap = limits.queued_jobs
        if (
            cap is not None
            and len(ledger.queued) >= cap
            and now - ledger.checked < _RECHECK_SECONDS
        ):
            raise _queue_full(cap, rate)

    async def release(self, tenant: str, job_id: str) -> None:
        """`job_id` no longer waits (it started, ended, or was never stored)."""
        await self._commit(tenant, _Change(job_id, None))

    async def _admit(self, ledger: Ledger, limits: TenantLimits, now: float) -> Ledger:
        """`ledger`, perhaps with stale entries dropped, if one more job fits; else _Refused."""
        try:
            rate = _rate(ledger, limits.submissions_per_minute, now)
        except ApiError as exc:
            raise _Refused(ledger, exc) from None
        cap = limits.queued_jobs
        if cap is None or len(ledger.queued) < cap:
            return ledger
        ledger = await self._verified(ledger, now)
        if len(ledger.queued) < cap:
            return ledger
        raise _Refused(ledger, _queue_full(cap, rate))

    async def _verified(self, ledger: Ledger, now: float) -> Ledger:
        """Without the entries whose job is gone or has started (see the module's doc)."""
        if now - ledger.checked < _RECHECK_SECONDS:
            return ledger
        settled = [job for job, added in ledger.queued.items() if added <= now - _SETTLE_SECONDS]
        gone: set[str] = set()
        if settled:
            items = await self._dapr.get_bulk_state(
                self._store, [job_key(job) for job in settled], parallelism=8
            )
            for item in items.items:
                if item.error:
                    continue  # unknown, so still counted: never admit on a failed read
                status = json.loads(item.data).get("status") if item.data else None
                if status != JobStatus.QUEUED:
                    gone.add(item.key.removeprefix(JOB_KEY_PREFIX))
        if gone:
            log.info("quota ledger: %d entries no longer waiting, dropped", len(gone))
        return replace(ledger.without(gone), checked=now)

    async def _write(self, tenant: str, ledger: Ledger, etag: str | None) -> bool:
        """False if another replica wrote the ledger first (the caller rereads)."""
        return await swap(
            self._dapr, self._store, _key(tenant), ledger.dump(), etag, _LEDGER_TTL_SECONDS
        )


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


def _settle(outcomes: dict[_Change, RateHeaders | ApiError | None]) -> None:
    for change, outcome in outcomes.items():
        if isinstance(outcome, ApiError):
            change.outcome.set_exception(outcome)
        else:
            change.outcome.set_result(outcome)


def _backoff(attempt: int) -> float:
    """Jittered, so replicas that lost to each other do not collide again."""
    return random.uniform(0, _BACKOFF_SECONDS * (attempt + 1))  # noqa: S311


def _queue_full(cap: int, rate: RateHeaders | None) -> ApiError:
    return ApiError(
        429,
        "too_many_queued_jobs",
        f"{cap} jobs of this tenant are waiting to start; submit more once some have",
        {"Retry-After": str(_RECHECK_SECONDS), **(rate.headers() if rate else {})},
    )


def follow_jobs(dapr_app: DaprApp) -> None:
    """Release each job from its tenant's ledger once an event shows it left `queued`.

    Through PUBSUB (one consumer group for all intake replicas), so each event is handled
    once. A failure asks for redelivery; should the retries run out, the event is gone and
    the check at the limit heals the ledger instead.
    """

    @subscribe(dapr_app, PUBSUB, JOB_EVENTS_TOPIC)
    async def on_job_event(request: Request) -> dict[str, str]:
        event = await read_job_event(request)
        if event is None:
            return SUCCESS
        if event.status is JobStatus.QUEUED:
            return SUCCESS
        quotas = Quotas(request.app.state.dapr, get_quota_settings())
        try:
            await quotas.release(event.record.tenant, event.job_id)
        except DAPR_ERRORS as exc:
            log.warning("job_id=%s quota release failed, will retry: %s", event.job_id, exc)
            return RETRY
        return SUCCESS
