"""worker: takes jobs from the `jobs` topic, runs them on a model, stores the outcome."""

from __future__ import annotations

import logging
from functools import partial

from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI, Request

from apps.worker.gateway import Gateway
from apps.worker.limits import SharedLimits
from apps.worker.profiles import load_catalog
from apps.worker.runner import Runner, give_up
from apps.worker.settings import get_settings
from jobrelay import metrics, telemetry
from jobrelay.constants import DEAD_LETTER_TOPIC, JOBS_TOPIC, PUBSUB
from jobrelay.contract import JobMessage
from jobrelay.dead_letters import DeadLetters
from jobrelay.errors import DAPR_ERRORS
from jobrelay.messages import BadMessage, publish_job_event, read_message
from jobrelay.service import build_app, dapr_lifespan
from jobrelay.subscriptions import DROP, RETRY, SUCCESS, subscribe

log = logging.getLogger(__name__)


async def _start(app: FastAPI) -> None:
    settings = get_settings()
    catalog = load_catalog(settings.models_file)
    log.info("model profiles from %s: %s", settings.models_file, ", ".join(catalog.profiles))
    app.state.gateway = Gateway(catalog, SharedLimits(app.state.dapr), settings.max_inflight)
    app.state.publish = partial(publish_job_event, app.state.dapr)
    app.state.runner = Runner(
        app.state.store,
        app.state.store.files,
        app.state.gateway,
        app.state.publish,
        lease_seconds=settings.claim_lease_seconds,
        hold_seconds=settings.duplicate_hold_seconds,
    )


async def _stop(app: FastAPI) -> None:
    await app.state.gateway.close()


app = build_app(
    "jobrelay worker",
    "0.1.0",
    dapr_lifespan(on_start=_start, on_stop=_stop),
    "Dapr subscriber: runs jobs from the `jobs` topic. Not for clients.",
)
dapr_app = DaprApp(app)


@subscribe(dapr_app, PUBSUB, JOBS_TOPIC, dead_letter_topic=DEAD_LETTER_TOPIC)
async def on_job(request: Request) -> dict[str, str]:
    try:
        message = await read_message(request, JobMessage)
    except BadMessage as exc:
        log.error("dropping undeliverable message to the dead-letter topic: %s", exc)
        return DROP
    telemetry.bind_job(message.job_id, message.task)
    try:
        outcome = await request.app.state.runner.deliver(message.job_id)
    except DAPR_ERRORS as exc:
        # The store is unreachable: nothing was decided, so the broker should try again.
        log.warning("job_id=%s store unavailable, asking for redelivery: %s", message.job_id, exc)
        return RETRY
    return {"status": outcome}


@subscribe(dapr_app, PUBSUB, DEAD_LETTER_TOPIC)
async def on_dead_letter(request: Request) -> dict[str, str]:
    try:
        message = await read_message(request, JobMessage)
    except BadMessage as exc:
        log.error("dead letter that is not a job message, discarded: %s", exc)
        return SUCCESS
    telemetry.bind_job(message.job_id, message.task)
    try:
        if await give_up(request.app.state.store, message.job_id, request.app.state.publish):
            await DeadLetters(request.app.state.dapr).add(message.job_id)
            metrics.DEAD_LETTERED.labels(message.task).inc()
    except DAPR_ERRORS as exc:
        log.warning("job_id=%s store unavailable for a dead letter: %s", message.job_id, exc)
        return RETRY
    return SUCCESS
