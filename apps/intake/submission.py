"""Accepting a job: claim its Idempotency-Key, then store its record and publish its claim
check as one commit (the state store's transactional outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from dapr.aio.clients import DaprClient

from apps.intake import idempotency
from apps.intake.quotas import Quotas, RateHeaders
from apps.intake.settings import IntakeSettings
from jobrelay import telemetry, transitions
from jobrelay.constants import JOBS_TOPIC, PUBSUB
from jobrelay.contract import JobError, JobMessage, JobRecord, JobStatus
from jobrelay.errors import DAPR_ERRORS, ApiError
from jobrelay.hub import EventHub, until_terminal
from jobrelay.store import JobStore, lifetime_seconds

log = logging.getLogger(__name__)

# A request that finds its Idempotency-Key taken by a job whose record is not there yet
# waits this long for it (the owner is between claiming the key and storing the job)
# before taking the key over from an owner that must have died in between.
_OWNER_GRACE_SECONDS = 2.0


class Intake:
    def __init__(
        self,
        dapr: DaprClient,
        store: JobStore,
        settings: IntakeSettings,
        hub: EventHub,
        quotas: Quotas,
    ) -> None:
        self.dapr, self.store, self.settings, self.hub = dapr, store, settings, hub
        self.quotas = quotas
        # The per-minute quota after this request's charge, for the answer's headers.
        self.rate: RateHeaders | None = None

    async def accept(
        self, record: JobRecord, idempotency_key: str | None, fingerprint: str
    ) -> JobRecord:
        """The job to answer with: `record`, now stored and queued, or the job an earlier
        request with the same Idempotency-Key made.

        The key is claimed before the job is stored and published: a request that loses the
        key never publishes anything, so one key can never run two jobs. The tenant's quota
        is charged after the key, so a replay of an accepted job is never charged (nor
        refused) again, and before the store, so a refused job leaves nothing behind.
        """
        telemetry.bind_job(record.id, record.task)
        # The submit's trace context, kept with the job: every later hop joins this trace.
        record = record.model_copy(update={"traceparent": telemetry.current_traceparent()})
        if idempotency_key is not None:
            existing = await self._claim_key(record, idempotency_key, fingerprint)
            if existing is not None:
                await self._withdraw(record)
                return existing
        try:
            self.rate = await self.quotas.charge(record.tenant, record.id)
        except ApiError:
            if idempotency_key is not None:
                await idempotency.release(self.dapr, record.tenant, idempotency_key, record.id)
            await self._withdraw(record)
            raise
        message = JobMessage(job_id=record.id, task=record.task)
        try:
            if self.settings.delivery == "outbox":
                await self.store.create_and_publish(record, message)
            else:
                await self._store_then_publish(record, message)
        except Exception:
            # Not queued: it must not take a waiting slot (the check at the limit would
            # find that out too, but only once the tenant is full).
            with contextlib.suppress(*DAPR_ERRORS):
                await self.quotas.release(record.tenant, record.id)
            raise
        if self.settings.fault == "exit_after_store":
            # Testing only: the process dies between the committed write and the answer,
            # which is where a crash used to leave a stored job that nobody would run.
            log.error("job_id=%s fault injection: exiting after the store", record.id)
            os._exit(17)
        log.info("job_id=%s task=%s status=queued", record.id, record.task)
        transitions.observe(record)
        return record

    async def _store_then_publish(self, record: JobRecord, message: JobMessage) -> None:
        """The `direct` delivery: no relay wait, and no atomicity (see IntakeSettings)."""
        await self.store.create(record)
        try:
            await self.dapr.publish_event(
                PUBSUB, JOBS_TOPIC, message.model_dump_json(), data_content_type="application/json"
            )
        except DAPR_ERRORS as exc:
            # Not queued after all: fail the job rather than leave it waiting for nothing.
            failed = record.moved_to(
                JobStatus.FAILED,
                error=JobError(code="publish_failed", message=f"not queued: {exc}", retryable=True),
            )
            versioned = await self.store.get(record.id)
            if versioned is not None:
                await self.store.replace(failed, versioned.etag)
            raise ApiError(
                503,
                "broker_unavailable",
                "the job could not be queued; try again",
                {"Retry-After": "5"},
            ) from exc

    async def _claim_key(self, record: JobRecord, key: str, fingerprint: str) -> JobRecord | None:
        ttl = lifetime_seconds(record.deadline, self.store.retention_seconds)
        claim = idempotency.KeyClaim(job_id=record.id, fingerprint=fingerprint)
        owner = await idempotency.claim(self.dapr, record.tenant, key, claim, ttl)
        if owner is None:
            return None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + _OWNER_GRACE_SECONDS
        while loop.time() < give_up:
            versioned = await self.store.get(owner)
            if versioned is not None:
                return versioned.record
            await asyncio.sleep(0.05)
        # The owner claimed the key and never stored its job: take the key over for this one.
        await idempotency.take_over(self.dapr, record.tenant, key, owner, claim, ttl)
        return None

    async def _withdraw(self, record: JobRecord) -> None:
        """This request's job was never stored; only an upload may need removing."""
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
