"""Pub/sub messages: reading the CloudEvent envelope Dapr wraps around each delivery."""

from __future__ import annotations

from typing import TypeVar

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from fastapi import Request
from pydantic import BaseModel, ValidationError

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
