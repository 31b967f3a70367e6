"""Accepting a job: store its record, claim its Idempotency-Key, publish its claim check."""

from __future__ import annotations

import logging

from dapr.aio.clients import DaprClient

from apps.intake import idempotency
from apps.intake.settings import IntakeSettings
from jobrelay.constants import JOBS_TOPIC, PUBSUB
from jobrelay.contract import JobError, JobMessage, JobRecord, JobStatus
from jobrelay.errors import DAPR_ERRORS, ApiError
from jobrelay.hub import EventHub, until_terminal
from jobrelay.store import JobStore, StaleRecord, lifetime_seconds

log = logging.getLogger(__name__)


class Intake:
    def __init__(
        self, dapr: DaprClient, store: JobStore, settings: IntakeSettings, hub: EventHub
    ) -> None:
        self.dapr, self.store, self.settings, self.hub = dapr, store, settings, hub

    async def accept(
        self, record: JobRecord, idempotency_key: str | None, fingerprint: str
    ) -> JobRecord:
        """The job to answer with: `record`, now stored and queued, or the job an earlier
        request with the same Idempotency-Key made.

        The record is stored before the key is claimed, so a request that loses the key race
        can always read the winner's record; it is published last, so a job withdrawn after
        losing never reaches a worker.
        """
        await self.store.create(record)
        if idempotency_key is not None:
            ttl = lifetime_seconds(record.deadline, self.store.retention_seconds)
            claim = idempotency.KeyClaim(job_id=record.id, fingerprint=fingerprint)
            try:
                owner = await idempotency.claim(
                    self.dapr, record.tenant, idempotency_key, claim, ttl
                )
            except ApiError:
                await self.withdraw(record)
                raise
            if owner is not None:
                await self.withdraw(record)
                return await self._existing(owner)
        await self._publish(record)
        return record

    async def withdraw(self, record: JobRecord) -> None:
        """Remove a stored job that was never published (and its file)."""
        await self.store.delete(record.id)
        if record.input.file is not None:
            await self.store.files.delete(record.input.file)

    async def wait(self, record: JobRecord, seconds: float) -> JobRecord:
        """The job once terminal, or as it is after `seconds` (Prefer: wait)."""
        with self.hub.watch(record.id) as events:
            # Reread inside the watch: a change before it is in the store, one after it
            # arrives as an event.
            versioned = await self.store.get(record.id)
            current = versioned.record if versioned else record
            return await until_terminal(events, current, seconds)

    async def _existing(self, job_id: str) -> JobRecord:
        versioned = await self.store.get(job_id)
        if versioned is None:
            raise ApiError(
                409,
                "idempotency_key_reused",
                "this Idempotency-Key belongs to a job that no longer exists",
            )
        return versioned.record

    async def _publish(self, record: JobRecord) -> None:
        message = JobMessage(job_id=record.id, task=record.task)
        try:
            await self.dapr.publish_event(
                PUBSUB, JOBS_TOPIC, message.model_dump_json(), data_content_type="application/json"
            )
        except DAPR_ERRORS as exc:
            log.error("job_id=%s publish failed: %s", record.id, exc)
            await self._fail_unpublished(record, str(exc))
            raise ApiError(
                503,
                "broker_unavailable",
                "the job could not be queued; try again",
                {"Retry-After": "5"},
            ) from exc
        log.info("job_id=%s task=%s status=queued", record.id, record.task)

    async def _fail_unpublished(self, record: JobRecord, reason: str) -> None:
        """A job whose message never left is failed rather than left queued with nothing to
        move it (a crash between store and publish is the outbox work of issue 5)."""
        failed = record.moved_to(
            JobStatus.FAILED,
            error=JobError(code="publish_failed", message=f"not queued: {reason}", retryable=True),
        )
        try:
            versioned = await self.store.get(record.id)
            if versioned is not None:
                await self.store.replace(failed, versioned.etag)
        except StaleRecord:
            log.warning("job_id=%s changed while being marked failed; left as it is", record.id)
        except DAPR_ERRORS:
            log.exception("job_id=%s could not be marked failed after a failed publish", record.id)
