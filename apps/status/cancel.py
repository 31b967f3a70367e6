"""Cancelling a job: an ETag-guarded move to `cancelled`.

A queued job then never runs (the worker finds it terminal); a running job's worker finds
its claim gone when it comes to store the result, and discards it.
"""

from __future__ import annotations

import logging

from jobrelay.contract import JobRecord, JobStatus
from jobrelay.errors import ApiError
from jobrelay.store import JobRecords, StaleRecord

log = logging.getLogger(__name__)

_TRIES = 3


async def cancel(store: JobRecords, job_id: str, tenant: str) -> JobRecord:
    for _ in range(_TRIES):
        versioned = await store.get(job_id)
        # Another tenant's job is "not found", never "forbidden" (apps/status/routes.py).
        if versioned is None or versioned.record.tenant != tenant:
            raise ApiError(404, "job_not_found", f"no job with id {job_id}")
        record = versioned.record
        if record.status.terminal:
            raise ApiError(409, "job_finished", f"the job is already {record.status}")
        cancelled = record.moved_to(JobStatus.CANCELLED)
        try:
            await store.replace(cancelled, versioned.etag)
        except StaleRecord:
            continue
        log.info("job_id=%s task=%s status=cancelled (was %s)", job_id, record.task, record.status)
        return cancelled
    raise ApiError(409, "job_busy", "the job changed while being cancelled; try again")
