"""Job events: who hears of a status change, and how it reaches only them.

A status change is published only to someone who will act on it:

- `job-events` (the `events` component: a consumer group per sidecar, so every replica
  could receive it) only while the job has watchers: the intake replicas holding a
  `Prefer: wait` and the status replicas streaming it. Each replica's subscription carries a
  routing rule that passes only the events naming that replica (`subscription_rule`), so
  daprd drops the rest without calling the app, and a replica that starts reads no history.
- `job-webhooks` (the `pubsub` component: one consumer group, so one status replica
  delivers it) only for the changes the job's webhook asked for.
- `batch-events` (the `pubsub` component, intake subscribes) only when a job made from a
  batch line ends, so its batch can count it (apps/intake/batches).

A job nobody watches and with no webhook costs no event at all. A watcher registers on the
record first and reads it after (jobrelay.hub), so no change can fall between the two: every
later change is written by someone who read the record with the watcher on it.

Publishing is best effort for watchers (they reread the record when idle) and awaited for
webhooks, before the change's delivery is acknowledged, so a webhook is never lost to a crash.
"""

from __future__ import annotations

import json
import logging
import uuid

from dapr.aio.clients import DaprClient

from jobrelay import transitions
from jobrelay.constants import (
    BATCH_EVENTS_TOPIC,
    EVENTS_PUBSUB,
    JOB_EVENTS_TOPIC,
    PUBSUB,
    WEBHOOK_EVENTS_TOPIC,
)
from jobrelay.contract import BatchJobEvent, JobEvent, JobRecord, WebhookEvent
from jobrelay.errors import DAPR_ERRORS
from jobrelay.publishing import Publisher

log = logging.getLogger(__name__)


def new_replica_id(app: str) -> str:
    """This process's name among the watchers: unique per start, so a restarted replica
    is never sent the events its previous life waited on."""
    return f"{app}-{uuid.uuid4().hex[:12]}"


def delta_readers(watchers: list[str]) -> list[str]:
    """The watchers that read a job's deltas: status replicas, whose event streams send
    them (apps/status/stream.py). An intake replica holding a `Prefer: wait` waits for the
    end alone, so it is not sent an event per chunk of text."""
    return [w for w in watchers if w.startswith("status-")]


def subscription_rule(replica: str) -> str:
    """The routing rule (CEL, evaluated by daprd) that passes an event to `replica` only."""
    return f"{json.dumps(replica)} in event.data.watchers"


def wants_webhook(record: JobRecord) -> bool:
    return record.webhook is not None and record.webhook.wanted(record.status) is not None


def wants_output(record: JobRecord) -> bool:
    """Whether the job's webhook asked for `output` events (its streamed text so far)."""
    return record.webhook is not None and WebhookEvent.OUTPUT in record.webhook.events


class Events:
    def __init__(self, dapr: DaprClient) -> None:
        # Publishes made at once go together (jobrelay.publishing): a busy worker's events.
        self._watchers = Publisher(dapr, EVENTS_PUBSUB, JOB_EVENTS_TOPIC)
        self._webhooks = Publisher(dapr, PUBSUB, WEBHOOK_EVENTS_TOPIC)
        self._batches = Publisher(dapr, PUBSUB, BATCH_EVENTS_TOPIC)

    async def changed(self, record: JobRecord) -> None:
        """`record` was just written with a new status: log and count it, and tell whoever
        waits on it. Call once per written transition, by the app that wrote it."""
        transitions.observe(record)
        if record.watchers:
            await self._publish(self._watchers, record, required=False)
        if wants_webhook(record):
            await self._publish(self._webhooks, record, required=True)
        if record.batch is not None and record.status.terminal:
            # Only jobs made from a batch line, once: their batch counts them from this
            # (best effort: a batch that stops moving rereads its jobs' statuses in bulk).
            try:
                await self._batches.publish(BatchJobEvent.of(record).model_dump_json())
            except DAPR_ERRORS as exc:
                log.warning("job_id=%s batch event not published: %s", record.id, exc)

    async def streamed(self, record: JobRecord, delta: int, output: bool) -> None:
        """Chunk `delta` of the text streamed in `record`'s attempt is stored: tell the
        watchers the record names, and the webhook if `output` (throttled by the caller).
        Both best effort: a stream reads the chunks from the store, and an `output` event
        is overtaken by the next one."""
        readers = delta_readers(record.watchers)
        if readers:
            told = record.model_copy(update={"watchers": readers})
            await self._publish(self._watchers, told, required=False, delta=delta)
        if output:
            await self._publish(self._webhooks, record, required=False, delta=delta)

    async def _publish(
        self, topic: Publisher, record: JobRecord, required: bool, delta: int | None = None
    ) -> None:
        try:
            await topic.publish(JobEvent.of(record, delta).model_dump_json())
        except DAPR_ERRORS as exc:
            if required:
                raise
            # The record in the store is the truth, and waiters reread it when idle: a lost
            # event delays a live update, it never loses a result.
            log.warning("job_id=%s event for %s not published: %s", record.id, record.status, exc)
