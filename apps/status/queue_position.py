"""A queued job's place in its tenant's queue, and when it may start: an estimate, cheap to
keep, shown on GET /v1/jobs/{id} while the job is queued.

Intake already keeps, per tenant, the jobs it accepted and has not seen start, with the
second each was accepted, in the order it wrote them (the quota ledger, `quota:{tenant}`,
apps/intake/ledger.py), so a position is one read of one key: the entries before this job.
Intake drops started jobs from that set lazily (apps/intake/quotas.py), so the entries
ahead are checked against their records, the oldest first and at most _CHECKS_PER_POLL of
them per poll, and the jobs found gone are remembered by this replica, so each is looked up
about once; unchecked entries count as waiting. A ledger is kept only for a tenant with a
`queued_jobs` quota (on by default): without one the position is unknown (null), not made
up.

The expected start comes from the rate this replica has seen the job's position fall: a
job not yet seen moving has none.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from jobrelay import keys
from jobrelay.contract import JobRecord, JobStatus, QueueView, utcnow
from jobrelay.state import State
from jobrelay.store import JobStore

# Records of entries ahead looked up per poll, at most: one bulk read.
_CHECKS_PER_POLL = 128
# Queued jobs whose first seen position this replica remembers (the oldest go first).
_REMEMBERED_JOBS = 10_000


class _Waiting(BaseModel):
    """The part of intake's quota ledger read here: job id -> Unix second it was accepted."""

    model_config = ConfigDict(extra="ignore")
    queued: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class _Seen:
    at: float  # time.monotonic() when first seen
    position: int


class QueuePositions:
    def __init__(self, state: State, jobs: JobStore) -> None:
        self._state = state
        self._jobs = jobs
        self._gone: dict[str, set[str]] = {}  # tenant -> ids seen no longer queued
        self._first: OrderedDict[str, _Seen] = OrderedDict()

    async def of(self, record: JobRecord) -> QueueView | None:
        """The job's place, while it is queued; None once it is not."""
        if record.status is not JobStatus.QUEUED:
            self._first.pop(record.id, None)
            return None
        item = await self._state.get(keys.quota(record.tenant))
        waiting = _Waiting.model_validate_json(item.data).queued if item else {}
        if record.id not in waiting:
            return QueueView(position=None, estimated_start_at=None)
        gone = self._gone.setdefault(record.tenant, set())
        gone.intersection_update(waiting)  # only what the ledger holds is worth remembering
        # Accept order: by the second each was accepted, and within a second in the order
        # intake wrote them (a JSON object keeps its order; the sort is stable).
        in_order = sorted(waiting, key=waiting.__getitem__)
        ahead = [job for job in in_order[: in_order.index(record.id)] if job not in gone]
        await self._check(record.tenant, ahead[:_CHECKS_PER_POLL])
        position = 1 + sum(1 for job in ahead if job not in gone)
        return QueueView(position=position, estimated_start_at=self._start(record.id, position))

    async def _check(self, tenant: str, job_ids: list[str]) -> None:
        if not job_ids:
            return
        statuses = await self._jobs.statuses(job_ids)
        # A job without a record (expired, or not stored yet) is not counted ahead either.
        left = {job for job, status in statuses.items() if status is not JobStatus.QUEUED}
        self._gone[tenant] |= left

    def _start(self, job_id: str, position: int) -> datetime | None:
        """Now plus `position` jobs at the rate this job's position has fallen since this
        replica first saw it; None before it has seen it move."""
        now = time.monotonic()
        seen = self._first.get(job_id)
        if seen is None:
            self._first[job_id] = _Seen(now, position)
            if len(self._first) > _REMEMBERED_JOBS:
                self._first.popitem(last=False)
            return None
        moved = seen.position - position
        if moved <= 0 or now <= seen.at:
            return None
        per_second = moved / (now - seen.at)
        return utcnow() + timedelta(seconds=position / per_second)
