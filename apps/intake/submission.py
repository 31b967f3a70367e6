"""Accepting a job: claim its Idempotency-Key, charge the tenant's quota, publish its
message, then store its record.

Publish first, then store: a stored record always has its message, so a crash can never
leave a job that got a 202 with nothing to run it. A crash (or a failed store) between the
two leaves a message without a record: the worker waits for the record through its grace,
then fences the job's key (jobrelay.store), and intake, should it try to store the record
after all, fails and answers 503, so the client knows to retry. Intake never tries to
store later than STORE_WINDOW_SECONDS after publishing, well inside the worker's grace.

Nothing here waits on a relay: the job is on the broker the moment the publish returns.

The job's entry in its tenant's index (jobrelay.job_index, for GET /v1/jobs) is added
alongside, concurrently with the publish and the store, so it costs the submit no round
trip of its own; it is awaited before the 202, so no accepted job is missing from a
listing. Should the entry fail where the record went in, the job is cancelled and the
submit answers 503 like any job not accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import timedelta

from apps.intake import idempotency
from apps.intake.quotas import Quotas, RateHeaders, Submit
from apps.intake.settings import IntakeSettings
from jobrelay import telemetry, transitions
from jobrelay.conflicts import STORE_ERRORS
from jobrelay.constants import PUBSUB
from jobrelay.contract import JobError, JobMessage, JobRecord, JobStatus, utcnow
from jobrelay.dead_letters import DeadLetters
from jobrelay.errors import DAPR_ERRORS
from jobrelay.events import Events
from jobrelay.hub import EventHub, until_terminal
from jobrelay.job_index import JobIndex
from jobrelay.lanes import Lanes
from jobrelay.publishing import Publisher
from jobrelay.service import Sidecar
from jobrelay.store import Fenced, JobStore, lifetime_seconds

log = logging.getLogger(__name__)

# A request that finds its Idempotency-Key taken by a job whose record is not there yet
# waits this long for it (the owner is between claiming the key and storing the job)
# before fencing that job out and taking the key over.
_OWNER_GRACE_SECONDS = 2.0
_OWNER_POLL_SECONDS = 0.02


class NotAccepted(Exception):
    """Published but not stored, so not accepted: the client retries (a worker fences the
    message's job, so it never runs)."""

    code = "not_accepted"

    def __init__(self, reason: str) -> None:
        super().__init__(f"the job was not accepted ({reason}); retry")


class BrokerUnavailable(Exception):
    """The job could not be published: nothing was stored, the client retries."""

    code = "broker_unavailable"


@dataclass(frozen=True, slots=True)
class Accepted:
    """What a submit answers with."""

    record: JobRecord  # the job: this request's, or the one its Idempotency-Key names
    rate: RateHeaders | None  # the per-minute quota after this submit; None if not charged


class Intake:
    def __init__(
        self, sidecar: Sidecar, settings: IntakeSettings, hub: EventHub, quotas: Quotas
    ) -> None:
        self.jobs: JobStore = sidecar.jobs
        self.events: Events = sidecar.events
        self.dead_letters = DeadLetters(sidecar.state)
        self.index = JobIndex(sidecar.state, sidecar.jobs.retention_seconds)
        self._state = sidecar.state
        self._dapr = sidecar.dapr
        self._lanes = Lanes()
        # One per lane topic, each gathering its own concurrent publishes into bulk ones.
        self._publishers: dict[str, Publisher] = {}
        self.settings = settings
        self.hub = hub
        self.quotas = quotas

    async def accept(
        self, record: JobRecord, idempotency_key: str | None, fingerprint: str
    ) -> Accepted:
        """`record`, now stored and queued, or the job an earlier request with the same
        Idempotency-Key made.

        The key is claimed before anything is published, so of two requests with one key
        only one ever publishes. The tenant's quota is charged after the key, so a replay of
        an accepted job is never charged (nor refused) again, and before the publish, so a
        refused job leaves nothing behind.
        """
        telemetry.bind_job(record.id, record.task)
        # The submit's trace context, kept with the job: every later hop joins this trace.
        record = record.model_copy(update={"traceparent": telemetry.current_traceparent()})
        if idempotency_key is not None:
            existing = await self._claim_key(record, idempotency_key, fingerprint)
            if existing is not None:
                await self._withdraw(record)
                return Accepted(existing, None)
        try:
            rate = (await self.quotas.admit(Submit(record.tenant, record.id))).rate
            await self._publish_store_and_index(record)
        except BaseException:
            await self._withdraw(record)
            if idempotency_key is not None:
                with contextlib.suppress(*DAPR_ERRORS):
                    await idempotency.release(
                        self._state, record.tenant, idempotency_key, record.id
                    )
            raise
        # Queued is written here, and nobody is told: whoever waits registered with it.
        transitions.observe(record)
        return Accepted(record, rate)

    async def _publish_store_and_index(self, record: JobRecord) -> None:
        stored, indexed = await asyncio.gather(
            self._publish_then_store(record), self.index.add(record), return_exceptions=True
        )
        if stored is not None:
            raise stored  # not accepted; an entry without a record is skipped by listings
        if indexed is not None:
            log.warning("job_id=%s stored but not indexed: %r", record.id, indexed)
            await self._cancel_unlisted(record)
            raise NotAccepted("it could not be added to the tenant's job list")

    async def _cancel_unlisted(self, record: JobRecord) -> None:
        """A job a listing would never show is not accepted: it must not run either."""

        def cancelled(current: JobRecord) -> JobRecord | None:
            if current.status.terminal:
                return None
            error = JobError(
                code="not_accepted", message="not added to the job list", retryable=True
            )
            return current.moved_to(JobStatus.CANCELLED, error=error)

        try:
            await self.jobs.update(record.id, cancelled)
        except STORE_ERRORS:
            log.error("job_id=%s neither indexed nor cancelled", record.id, exc_info=True)

    async def _publish_then_store(self, record: JobRecord) -> None:
        sent_at = utcnow()
        try:
            message = JobMessage(job_id=record.id, task=record.task, sent_at=sent_at)
            await self.publish(message, record)
        except DAPR_ERRORS as exc:
            log.warning("job_id=%s not published: %s", record.id, exc)
            raise BrokerUnavailable("the job could not be queued; retry") from exc
        await self._fault("exit_after_publish", record)
        if self.settings.fault_store_delay_seconds:
            await asyncio.sleep(self.settings.fault_store_delay_seconds)
        if utcnow() - sent_at > timedelta(seconds=self.settings.store_window_seconds):
            # A worker may fence the job any moment now: better a clear retry than a race.
            raise NotAccepted("it took too long to store")
        if self.settings.fault == "fail_store":
            raise NotAccepted("fault injection: the store failed")
        try:
            await self.jobs.create(record)
        except Fenced as exc:
            raise NotAccepted("a worker gave up waiting for it") from exc
        except DAPR_ERRORS as exc:
            log.warning("job_id=%s published but not stored: %s", record.id, exc)
            raise NotAccepted("the job store is not reachable") from exc
        await self._fault("exit_after_store", record)

    async def publish(self, message: JobMessage, record: JobRecord) -> None:
        """Put a job on its lane's topic (jobrelay.lanes), chosen from its record's priority
        and tenant: no state call. The record is the worker's to read."""
        topic = self._lanes.topic(record.priority, record.tenant)
        publisher = self._publishers.get(topic)
        if publisher is None:
            publisher = self._publishers[topic] = Publisher(self._dapr, PUBSUB, topic)
        await publisher.publish(message.model_dump_json())

    async def _fault(self, point: str, record: JobRecord) -> None:
        if self.settings.fault == point:
            # Testing only (tests/chaos): the process dies at this point of an accept.
            log.error("job_id=%s fault injection: exiting at %s", record.id, point)
            os._exit(17)

    async def _claim_key(self, record: JobRecord, key: str, fingerprint: str) -> JobRecord | None:
        """None once this request owns `key`; else the job of the request that does."""
        ttl = lifetime_seconds(record.deadline, self.jobs.retention_seconds)
        claim = idempotency.KeyClaim(job_id=record.id, fingerprint=fingerprint)
        owner = await idempotency.claim(self._state, record.tenant, key, claim, ttl)
        if owner is None:
            return None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + _OWNER_GRACE_SECONDS
        while loop.time() < give_up:
            versioned = await self.jobs.get(owner)
            if versioned is not None:
                return versioned.record
            await asyncio.sleep(_OWNER_POLL_SECONDS)
        # The owner claimed the key and has not stored its job: make sure it never can,
        # unless it just did, before taking the key over for this request.
        stored = await self.jobs.fence(owner)
        if stored is not None:
            return stored.record
        await idempotency.take_over(self._state, record.tenant, key, owner, claim, ttl)
        return None

    async def _withdraw(self, record: JobRecord) -> None:
        """This request's job was not stored; only an upload may need removing."""
        if record.input.file is not None:
            await self.jobs.files.delete(record.input.file)

    async def submit(
        self, record: JobRecord, idempotency_key: str | None, fingerprint: str, wait: float
    ) -> Accepted:
        """`accept`, then (Prefer: wait) the job once terminal, or as it is after `wait`
        seconds. The record is stored with this replica among its watchers, so its events
        come here from the start and waiting costs no extra write."""
        if not wait:
            return await self.accept(record, idempotency_key, fingerprint)
        with self.hub.watch(record.id) as events:
            watched = record.watched_by(self.hub.replica) or record
            accepted = await self.accept(watched, idempotency_key, fingerprint)
            current = accepted.record
            if current.id != record.id:
                # An earlier request's job (the same Idempotency-Key): register on it.
                with self.hub.watch(current.id) as theirs:
                    current = await self.hub.register(current.id) or current
                    done = await until_terminal(theirs, current, wait)
                return Accepted(done, accepted.rate)
            done = await until_terminal(events, current, wait)
            return Accepted(done, accepted.rate)
