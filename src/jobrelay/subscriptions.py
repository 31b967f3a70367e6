"""What an app tells its sidecar at `/dapr/subscribe`, and where the sidecar delivers.

Programmatic subscriptions, declared here rather than through dapr-ext-fastapi's DaprApp,
because DaprApp declares no routing rules: a rule (CEL, evaluated in daprd) lets the sidecar
drop an event the app has no use for without calling the app at all, which is how job events
reach only the replicas waiting on them (jobrelay.events).

Deliveries are served here too, straight from ASGI, ahead of the app's FastAPI stack
(jobrelay.service.ServiceApp): a delivery is one small POST from the app's own sidecar, and
the routing, dependency injection and middlewares a client request goes through would cost
a worker more than the delivery's own work. What they did that a delivery needs is done
here: the app token is checked, the caller's trace context is taken up, errors never escape.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from jobrelay import telemetry
from jobrelay.contract import JobEvent

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

ROUTE_PREFIX = "/events/"
SUBSCRIBE_PATH = "/dapr/subscribe"


class Delivery(StrEnum):
    """What a subscriber answers Dapr about a message (the body of a 200)."""

    SUCCESS = "SUCCESS"  # done with it (including a duplicate that needs nothing)
    RETRY = "RETRY"  # deliver again later, per the resiliency policy
    DROP = "DROP"  # unusable: to the dead-letter topic, if the subscription has one


class BadMessage(Exception):
    """The delivery is not the message its topic carries; retrying cannot fix it."""


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery, as the sidecar posted it: a CloudEvent in HTTP."""

    body: bytes
    headers: Mapping[str, str]

    def data(self, model: type[M]) -> M:
        """The CloudEvent's data as `model`; BadMessage if it is not one."""
        try:
            event = from_http_event(HTTPMessage(headers=dict(self.headers), body=self.body))
            data = event.get_data()
            if isinstance(data, str | bytes):
                return model.model_validate_json(data)
            return model.model_validate(data)
        except (ValueError, ValidationError) as exc:  # cloudevents raises ValueError kinds
            raise BadMessage(f"not a {model.__name__}: {exc}") from exc


Handler = Callable[[Message], Awaitable[Delivery]]


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic an app takes through one pub/sub component, and how daprd delivers it."""

    pubsub: str
    topic: str
    dead_letter_topic: str | None = None
    # A CEL expression over the CloudEvent (`event`); unset, every message is delivered.
    match: str | None = None

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

    @property
    def route(self) -> str:
        # The component is in the path: one app may take one topic through two components.
        return f"{ROUTE_PREFIX}{self.pubsub}/{self.topic}"


def _json(status: int, body: object) -> tuple[int, bytes]:
    return status, json.dumps(body, separators=(",", ":")).encode()


class Subscriptions:
    """The subscriptions of one app: declared at /dapr/subscribe, delivered at their routes.

    `app_token`: the APP_API_TOKEN the sidecar sends in `dapr-api-token`; without it checked,
    anyone who reaches the app's port could post forged messages (a `jobs` message for
    another tenant's job, say) straight to a route. None: open (loopback development).
    """

    def __init__(self, app_token: str | None) -> None:
        self._token = app_token.encode() if app_token is not None else None
        self._routes: dict[str, tuple[Subscription, Handler]] = {}

    def add(self, subscription: Subscription, handler: Handler) -> None:
        self._routes[subscription.route] = (subscription, handler)

    @staticmethod
    def serves(path: str) -> bool:
        return path.startswith(ROUTE_PREFIX) or path == SUBSCRIBE_PATH

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status, body = await self._answer(scope, headers, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self, scope: Scope, headers: dict[str, str], receive: Receive
    ) -> tuple[int, bytes]:
        if self._token is not None:
            given = headers.get("dapr-api-token", "").encode()
            if not hmac.compare_digest(given, self._token):
                error = {"code": "unauthorized", "message": "sidecar routes need the app token"}
                return _json(401, {"error": error})
        path, method = scope["path"], scope["method"]
        if path == SUBSCRIBE_PATH and method == "GET":
            return _json(200, [s.declared() for s, _ in self._routes.values()])
        route = self._routes.get(path)
        if route is None or method != "POST":
            return _json(404, {"error": {"code": "not_found", "message": f"no route {path}"}})
        message = Message(await _body(receive), headers)
        with telemetry.delivery_span(f"POST {path}", headers):
            try:
                answer = await route[1](message)
            except Exception:
                # The handler decided nothing: the broker keeps the message for a retry.
                log.exception("delivery to %s failed; asking for redelivery", path)
                answer = Delivery.RETRY
        return _json(200, {"status": answer})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        event = await receive()
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            return b"".join(chunks)


def read_job_event(message: Message) -> JobEvent | None:
    """The job event a delivery carries, its job bound to the delivery's logs and spans;
    None (logged) for a message that is not one, which no redelivery would mend."""
    try:
        event = message.data(JobEvent)
    except BadMessage as exc:
        log.error("job event discarded: %s", exc)
        return None
    telemetry.bind_job(event.job_id)
    return event
