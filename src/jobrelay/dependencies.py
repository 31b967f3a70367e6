"""Typed FastAPI dependencies from the app that serves a request: what its lifespan built,
as attributes its own app class declares, never objects on an untyped `app.state`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import FastAPI, Request

A = TypeVar("A", bound=FastAPI)
T = TypeVar("T")


def app_of(request: Request, kind: type[A]) -> A:
    """The app serving `request`, as the kind of app its routes belong to."""
    app = request.app
    assert isinstance(app, kind), f"served by a {kind.__name__}"
    return app


def from_app(kind: type[A], part: Callable[[A], T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency answering `part` of the app serving the request:
    `Annotated[Intake, Depends(from_app(IntakeApp, lambda app: app.intake))]`.

    Async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
    for an attribute lookup."""

    async def dependency(request: Request) -> T:
        return part(app_of(request, kind))

    return dependency
