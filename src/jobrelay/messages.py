"""Pub/sub messages: reading the CloudEvent envelope Dapr wraps around each delivery, and
publishing job events."""

from __future__ import annotations

import logging
from typing import TypeVar

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from dapr.aio.clients import DaprClient
from fastapi import Request
from pydantic import BaseModel, ValidationError

from jobrelay import transitions
from jobrelay.constants import EVENTS_PUBSUB, JOB_EVENTS_TOPIC
from jobrelay.contract import JobEvent, JobRecord
from jobrelay.errors import DAPR_ERRORS
from jobrelay.payloads import stripped

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class BadMessage(Exception):
    """The delivery is not the message its topic carries; retrying cannot fix it."""


async def read_message(request: Request, model: type[M]) -> M:
    body = await request.body()
    try:
        event = from_http_event(HTTPMessage(headers=dict(request.headers), body=body))
        data = event.get_data()
        # A JSON payload arrives as an object from a plain publish, and as a JSON string from
        # the state store's outbox (it wraps the projection's bytes as they were).
        if isinstance(data, str | bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except (ValueError, ValidationError) as exc:  # cloudevents raises ValueError subclasses
        raise BadMessage(f"not a {model.__name__}: {exc}") from exc


async def publish_job_event(dapr: DaprClient, record: JobRecord) -> None:
    """Tell streams, waiters and webhooks that `record` changed status.

    Best effort: the record in the store is the truth, and streams reread it when idle, so a
    lost event delays a live update but never loses a result.
    """
    # Every status change an app writes comes through here: its log line and counters.
    transitions.observe(record)
    try:
        # Through EVENTS_PUBSUB, whose maxLenApprox keeps the broadcast stream short.
        await dapr.publish_event(
            EVENTS_PUBSUB,
            JOB_EVENTS_TOPIC,
            # Without the contents: the broker keeps recent events (the `events` component's
            # maxLen), and what clients send and models answer is stored only encrypted
            # (jobrelay.payloads). Consumers that show it read it back (JobStore.filled).
            JobEvent.of(stripped(record, None)).model_dump_json(),
            data_content_type="application/json",
        )
    except DAPR_ERRORS as exc:
        log.warning("job_id=%s event for %s not published: %s", record.id, record.status, exc)
