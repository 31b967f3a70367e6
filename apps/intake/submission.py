"""Accepting a job: store its record, then publish its claim check on the `jobs` topic."""

from __future__ import annotations

import logging

from dapr.aio.clients import DaprClient

from jobrelay.constants import JOBS_TOPIC, PUBSUB
from jobrelay.contract import JobError, JobMessage, JobRecord, JobStatus
from jobrelay.errors import DAPR_ERRORS, ApiError
from jobrelay.store import JobStore, StaleRecord

log = logging.getLogger(__name__)


async def submit(dapr: DaprClient, store: JobStore, record: JobRecord) -> None:
    """Store then publish. The record goes first, so a worker never receives a message whose
    record it cannot read. If the publish fails the job is marked failed rather than left
    queued with no message to move it (a crash between the two is the outbox work of the
    reliability issue).
    """
    await store.create(record)
    message = JobMessage(job_id=record.id, task=record.task)
    try:
        await dapr.publish_event(
            PUBSUB, JOBS_TOPIC, message.model_dump_json(), data_content_type="application/json"
        )
    except DAPR_ERRORS as exc:
        log.error("job_id=%s publish failed: %s", record.id, exc)
        await _fail_unpublished(store, record, str(exc))
        raise ApiError(
            503,
            "broker_unavailable",
            "the job could not be queued; try again",
            {"Retry-After": "5"},
        ) from exc
    log.info("job_id=%s task=%s status=queued", record.id, record.task)


async def _fail_unpublished(store: JobStore, record: JobRecord, reason: str) -> None:
    failed = record.moved_to(
        JobStatus.FAILED,
        error=JobError(code="publish_failed", message=f"not queued: {reason}", retryable=True),
    )
    versioned = await store.get(record.id)
    if versioned is None:
        return
    try:
        await store.replace(failed, versioned.etag)
    except StaleRecord:
        log.warning("job_id=%s changed while being marked failed; left as it is", record.id)
    except DAPR_ERRORS:
        log.exception("job_id=%s could not be marked failed after a failed publish", record.id)
