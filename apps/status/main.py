"""status: where clients collect results: polling, a live event stream, and webhooks."""

from __future__ import annotations

import logging

import httpx
from fastapi.middleware.cors import CORSMiddleware

from apps.status.deps import StatusApp
from apps.status.queue_position import QueuePositions
from apps.status.routes import router
from apps.status.settings import StatusSettings, get_settings
from apps.status.signing import SigningSecrets
from apps.status.web_page import mount_page
from apps.status.webhooks import WebhookSender
from jobrelay.auth import AuthSettings
from jobrelay.conflicts import STORE_ERRORS
from jobrelay.constants import PUBSUB, WEBHOOK_EVENTS_TOPIC
from jobrelay.errors import DAPR_ERRORS
from jobrelay.events import new_replica_id
from jobrelay.hub import EventHub
from jobrelay.job_index import JobIndex
from jobrelay.service import Connect, Sidecar, build_app, dapr_lifespan
from jobrelay.subscriptions import Delivery, Message, Subscription, read_job_event

log = logging.getLogger(__name__)


def create_app(settings: StatusSettings | None = None, connect: Connect | None = None) -> StatusApp:
    """The status app. `connect` opens its sidecar client (DaprClient by default)."""
    settings = settings or get_settings()

    async def start(sidecar: Sidecar) -> None:
        app.hub.bind(sidecar.jobs)
        app.http = httpx.AsyncClient(follow_redirects=False)
        secrets = SigningSecrets(sidecar.dapr, settings, AuthSettings())
        await secrets.start()
        app.signing_secrets = secrets
        app.webhook_sender = WebhookSender(
            sidecar.jobs, settings, app.http, secrets, sidecar.deltas
        )
        app.index = JobIndex(sidecar.state, sidecar.jobs.retention_seconds)
        app.queue_positions = QueuePositions(sidecar.state, sidecar.jobs)

    async def stop(_: Sidecar) -> None:
        await app.webhook_sender.close()
        await app.http.aclose()

    async def on_webhook_event(message: Message) -> Delivery:
        event = read_job_event(message)
        if event is None:
            return Delivery.SUCCESS
        try:
            current = await app.sidecar.jobs.get(event.job_id)
        except DAPR_ERRORS as exc:
            log.warning(
                "job_id=%s webhook event: store unreachable, retrying: %s", event.job_id, exc
            )
            return Delivery.RETRY
        # A change the job has moved past is not delivered: the later change's own event is.
        # So is an `output` of an attempt that has ended: its outcome is delivered instead.
        if current is None or current.record.seq != event.seq:
            return Delivery.SUCCESS
        try:
            if event.delta is not None:
                await app.webhook_sender.on_output(current.record, event.delta)
            else:
                await app.webhook_sender.on_change(current.record)
        except STORE_ERRORS as exc:
            log.warning("job_id=%s webhook not sent, retrying: %s", event.job_id, exc)
            return Delivery.RETRY
        return Delivery.SUCCESS

    app = build_app(
        "jobrelay status",
        "0.1.0",
        dapr_lifespan(on_start=start, on_stop=stop, clients=True, connect=connect),
        "Read a job's status and result, follow it live, or cancel it.",
        StatusApp,
        clients=True,
    )
    app.settings = settings
    app.hub = EventHub(new_replica_id("status"))
    app.include_router(router)
    mount_page(app)
    # Pages on other origins (the reference sample's, JOBRELAY_STATUS_CORS_ORIGINS) poll
    # results from the browser; they must read Retry-After, or they fall back to a fixed slow
    # interval.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "DELETE"],
        allow_headers=["Authorization", "Last-Event-ID"],
        expose_headers=["Retry-After", "Location"],
        max_age=600,
    )
    # Each replica hears of the jobs its live streams follow.
    app.hub.subscribe(app.subscriptions)
    # Webhooks through the shared consumer group: one delivery per event in all.
    app.subscriptions.add(Subscription(PUBSUB, WEBHOOK_EVENTS_TOPIC), on_webhook_event)
    return app
