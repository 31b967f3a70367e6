"""A job's status and which status may follow which."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class Priority(StrEnum):
    """Which lane a job waits in: a worker serves `high` before `normal` before `low`
    (docs/fairness.md). Not a promise of order across brokers, only of who goes first
    among the jobs a worker holds and of separate lanes on the broker."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is served first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


class JobStatus(StrEnum):
    """Where a job is in its life. Only `queued` and `running` are not terminal."""

    QUEUED = "queued"  # accepted and published; no worker holds it
    RUNNING = "running"  # a worker has claimed it and is calling the model
    SUCCEEDED = "succeeded"  # the result is stored
    FAILED = "failed"  # gave up; `error` says why
    CANCELLED = "cancelled"  # the client cancelled it; any result was discarded
    EXPIRED = "expired"  # its deadline passed before a worker started it

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


# Which status may follow which. A write that is not in this table is refused, so a late or
# duplicate message can never move a job backwards (say, from succeeded to running).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
    ),
    JobStatus.RUNNING: frozenset(
        # running -> queued hands a job back for a retry after a transient failure, and
        # running -> running is a takeover of a claim whose worker died.
        {
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        }
    ),
}


class IllegalTransition(Exception):
    """A write would move a job to a status that may not follow its current one."""
