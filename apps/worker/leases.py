"""Keeping a claim alive while its job runs.

The running worker renews its lease every third of it. A renewal that fails for a passing
reason (the store restarting, a lost race) is tried again soon, until the lease would lapse:
a worker that stopped renewing at the first error would let a healthy job be taken over and
run twice. Only a claim that is really gone (cancelled, taken over) stops the work: its
result would be discarded anyway.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from jobrelay.conflicts import STORE_ERRORS
from jobrelay.contract import JobRecord, JobResult, JobStatus, utcnow
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

# After a failed renewal, try again after this long (or sooner, if the lease is nearly out).
_RETRY_SECONDS = 2.0


class ClaimLost(Exception):
    """The record no longer shows this claim."""


async def renew(jobs: JobStore, claimed: JobRecord, lease_seconds: float) -> None:
    """Push the claim's lease out by `lease_seconds`; ClaimLost if the claim is gone."""

    def renewed(current: JobRecord) -> JobRecord | None:
        if current.status is not JobStatus.RUNNING or current.attempts != claimed.attempts:
            raise ClaimLost(claimed.id)
        until = utcnow() + timedelta(seconds=lease_seconds)
        return current.model_copy(update={"lease_expires_at": until})

    if await jobs.update(claimed.id, renewed) is None:
        raise ClaimLost(claimed.id)


async def keep_claim(
    jobs: JobStore, claimed: JobRecord, work: asyncio.Task[JobResult], lease_seconds: float
) -> None:
    """Renew the lease while `work` runs; stop `work` if the claim is lost."""
    expires = claimed.lease_expires_at or utcnow()
    pause = lease_seconds / 3
    while True:
        await asyncio.sleep(pause)
        try:
            await renew(jobs, claimed, lease_seconds)
        except ClaimLost:
            work.cancel()
            return
        except STORE_ERRORS as exc:
            left = (expires - utcnow()).total_seconds()
            log.warning(
                "job_id=%s lease not renewed (%s); %.0f s of it left, trying again",
                claimed.id,
                exc,
                left,
            )
            pause = max(min(_RETRY_SECONDS, left / 2), 0.05)
            continue
        expires = utcnow() + timedelta(seconds=lease_seconds)
        pause = lease_seconds / 3
