"""Typed helpers over dapr-ext-fastapi's subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from dapr.ext.fastapi import DaprApp
from fastapi import Request

from jobrelay import telemetry
from jobrelay.constants import EVENTS_PUBSUB, JOB_EVENTS_TOPIC
from jobrelay.contract import JobEvent
from jobrelay.errors import DAPR_ERRORS
from jobrelay.hub import EventHub
from jobrelay.messages import BadMessage, read_message
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[dict[str, str]]]

# What a subscriber answers Dapr (the body of a 200).
SUCCESS = {"status": "SUCCESS"}  # done with it
RETRY = {"status": "RETRY"}  # deliver again later, per the resiliency policy
DROP = {"status": "DROP"}  # unusable: to the dead-letter topic if there is one


def subscribe(
    dapr_app: DaprApp, pubsub: str, topic: str, dead_letter_topic: str | None = None
) -> Callable[[Handler], Handler]:
    """Register `handler` for `topic`; its route names the component too, so one app can
    subscribe to one topic through two components."""

    def register(handler: Handler) -> Handler:
        dapr_app.subscribe(
            pubsub=pubsub,
            topic=topic,
            route=f"/events/{pubsub}/{topic}",
            dead_letter_topic=dead_letter_topic,
        )(handler)
        return handler

    return register


async def read_job_event(request: Request) -> JobEvent | None:
    """The job event a delivery carries, its job bound to the request's logs and spans; None
    (logged) for a message that is not one, which no redelivery would mend."""
    try:
        event = await read_message(request, JobEvent)
    except BadMessage as exc:
        log.error("job event discarded: %s", exc)
        return None
    telemetry.bind_job(event.job_id, event.record.task, event.record.traceparent)
    return event


def feed_hub(dapr_app: DaprApp, hub: EventHub) -> None:
    """Every job event this replica's sidecar receives goes to the local waiters."""

    @subscribe(dapr_app, EVENTS_PUBSUB, JOB_EVENTS_TOPIC)
    async def on_job_event(request: Request) -> dict[str, str]:
        event = await read_job_event(request)
        if event is None:
            return DROP
        # Most events concern jobs nobody here waits on: those cost no store read.
        if not hub.watched(event.job_id):
            return SUCCESS
        store: JobStore = request.app.state.store
        try:
            hub.publish(await store.filled(event.record))
        except DAPR_ERRORS as exc:
            # The waiters reread the record when idle (jobrelay.hub), so nothing is lost.
            log.warning("job_id=%s event not passed on; store unreachable: %s", event.job_id, exc)
        return SUCCESS
