"""Cancelling a job: a guarded move to `cancelled` (status for a client, intake for a
batch: apps/intake/batches).

A queued job then never runs (the worker finds it terminal); a running job's worker finds
its claim gone when it comes to store the result, and discards it.
"""

from __future__ import annotations

import logging

from jobrelay.contract import JobRecord, JobStatus
from jobrelay.store import JobStore

log = logging.getLogger(__name__)


class JobNotFound(Exception):
    """No such job of this tenant's (another tenant's job is not found either)."""


class JobFinished(Exception):
    """The job is terminal already; its status is the message."""


async def cancel(jobs: JobStore, job_id: str, tenant: str) -> JobRecord:
    """The job, now cancelled; JobNotFound, JobFinished, or Contended if it kept changing."""

    def cancelled(record: JobRecord) -> JobRecord:
        # Another tenant's job is "not found", never "forbidden" (apps/status/routes.py).
        if record.tenant != tenant:
            raise JobNotFound(job_id)
        if record.status.terminal:
            raise JobFinished(record.status)
        return record.moved_to(JobStatus.CANCELLED)

    updated = await jobs.update(job_id, cancelled)
    if updated is None:
        raise JobNotFound(job_id)
    return updated.record
