"""status: where clients collect results: polling, a live event stream, and webhooks."""

from __future__ import annotations

import logging

import httpx
from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from apps.status.routes import router
from apps.status.settings import get_settings
from apps.status.signing import SigningSecrets
from apps.status.web import mount_page
from apps.status.webhooks import WebhookSender
from jobrelay.auth import AuthSettings
from jobrelay.constants import JOB_EVENTS_TOPIC, PUBSUB
from jobrelay.hub import EventHub
from jobrelay.service import build_app, dapr_lifespan
from jobrelay.subscriptions import SUCCESS, feed_hub, read_job_event, subscribe

log = logging.getLogger(__name__)


async def _start(app: FastAPI) -> None:
    app.state.http = httpx.AsyncClient(follow_redirects=False)
    secrets = SigningSecrets(app.state.dapr, get_settings(), AuthSettings())
    await secrets.start()
    app.state.signing_secrets = secrets
    app.state.webhooks = WebhookSender(app.state.store, get_settings(), app.state.http, secrets)


async def _stop(app: FastAPI) -> None:
    await app.state.http.aclose()


app = build_app(
    "jobrelay status",
    "0.1.0",
    dapr_lifespan(on_start=_start, on_stop=_stop, clients=True),
    "Read a job's status and result, follow it live, or cancel it.",
)
app.state.hub = EventHub()
app.include_router(router)
mount_page(app)
# Pages on other origins (the reference sample's, JOBRELAY_STATUS_CORS_ORIGINS) poll results
# from the browser; they must read Retry-After, or they fall back to a fixed slow interval.
app.add_middleware(
    CORSMiddleware,
    allow_origins=get_settings().cors_origins,
    allow_methods=["GET", "DELETE"],
    allow_headers=["Authorization", "Last-Event-ID"],
    expose_headers=["Retry-After", "Location"],
    max_age=600,
)
dapr_app = DaprApp(app)
# Every replica sees every event (its own consumer group): its live streams need them all.
feed_hub(dapr_app, app.state.hub)


# Webhooks subscribe through the shared consumer group: one delivery per event in all.
@subscribe(dapr_app, PUBSUB, JOB_EVENTS_TOPIC)
async def on_job_event(request: Request) -> dict[str, str]:
    event = await read_job_event(request)
    if event is None:
        return SUCCESS
    await request.app.state.webhooks.on_change(event.record)
    return SUCCESS
