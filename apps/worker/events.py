"""Reading the CloudEvent envelope Dapr wraps around every pub/sub message."""

from __future__ import annotations

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from fastapi import Request
from pydantic import ValidationError

from jobrelay.contract import JobMessage


class BadMessage(Exception):
    """The delivery is not a JobMessage; retrying cannot fix it."""


async def job_message(request: Request) -> JobMessage:
    body = await request.body()
    try:
        event = from_http_event(HTTPMessage(headers=dict(request.headers), body=body))
        return JobMessage.model_validate(event.get_data())
    except (ValueError, ValidationError) as exc:  # cloudevents raises ValueError subclasses
        raise BadMessage(f"not a job message: {exc}") from exc
