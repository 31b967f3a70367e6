"""What an app tells its sidecar at `/dapr/subscribe`, and where the sidecar delivers.

Programmatic subscriptions, declared here rather than through dapr-ext-fastapi's DaprApp,
because DaprApp declares neither routing rules nor a route per component: a rule (CEL,
evaluated in daprd) lets the sidecar drop an event the app has no use for without calling
the app at all, which is how job events reach only the replicas waiting on them
(jobrelay.events).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request

from jobrelay import telemetry
from jobrelay.contract import JobEvent
from jobrelay.messages import BadMessage, read_message

log = logging.getLogger(__name__)


class Delivery(StrEnum):
    """What a subscriber answers Dapr about a message (the body of a 200)."""

    SUCCESS = "SUCCESS"  # done with it (including a duplicate that needs nothing)
    RETRY = "RETRY"  # deliver again later, per the resiliency policy
    DROP = "DROP"  # unusable: to the dead-letter topic, if the subscription has one


Handler = Callable[[Request], Awaitable[Delivery]]


@dataclass(frozen=True, slots=True)
class Subscription:
    pubsub: str
    topic: str
    dead_letter_topic: str | None = None
    # A CEL expression over the CloudEvent (`event`); unset, every message is delivered.
    match: str | None = None

    @property
    def route(self) -> str:
        # The component is in the path: one app may take one topic through two components.
        return f"/events/{self.pubsub}/{self.topic}"

    def declared(self) -> dict[str, Any]:
        """The subscription as Dapr reads it from /dapr/subscribe."""
        out: dict[str, Any] = {"pubsubname": self.pubsub, "topic": self.topic}
        if self.match is None:
            out["route"] = self.route
        else:
            # No default route: an event no rule matches is acknowledged by daprd unseen.
            out["routes"] = {"rules": [{"match": self.match, "path": self.route}]}
        if self.dead_letter_topic is not None:
            out["deadLetterTopic"] = self.dead_letter_topic
        return out


class Subscriptions:
    """The subscriptions of one app, served at /dapr/subscribe."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._declared: list[Subscription] = []
        app.add_api_route("/dapr/subscribe", self._list, methods=["GET"], include_in_schema=False)

    def add(self, subscription: Subscription, handler: Handler) -> None:
        async def deliver(request: Request) -> dict[str, str]:
            return {"status": await handler(request)}

        self._declared.append(subscription)
        self._app.add_api_route(
            subscription.route, deliver, methods=["POST"], include_in_schema=False
        )

    async def _list(self) -> list[dict[str, Any]]:
        return [s.declared() for s in self._declared]


async def read_job_event(request: Request) -> JobEvent | None:
    """The job event a delivery carries, its job bound to the request's logs and spans; None
    (logged) for a message that is not one, which no redelivery would mend."""
    try:
        event = await read_message(request, JobEvent)
    except BadMessage as exc:
        log.error("job event discarded: %s", exc)
        return None
    telemetry.bind_job(event.job_id)
    return event
