"""worker: takes jobs from the lane topics (jobrelay.lanes), runs them on a model, stores
the outcome."""

from __future__ import annotations

import logging

from apps.worker.gateway import Gateway
from apps.worker.outcomes import give_up
from apps.worker.profiles import load_catalog
from apps.worker.rate_window import RateWindows
from apps.worker.runner import Runner
from apps.worker.settings import WorkerSettings, get_settings
from apps.worker.slots import SharedSlots
from apps.worker.streaming import Streams
from apps.worker.tasks import load_runners
from jobrelay import metrics, telemetry
from jobrelay.conflicts import STORE_ERRORS
from jobrelay.constants import DEAD_LETTER_TOPIC, PUBSUB
from jobrelay.contract import JobMessage
from jobrelay.dead_letters import DeadLetters
from jobrelay.lanes import LEGACY_TOPIC, Lanes
from jobrelay.service import Connect, ServiceApp, Sidecar, build_app, dapr_lifespan
from jobrelay.subscriptions import BadMessage, Delivery, Message, Subscription
from jobrelay.task_catalog import TASKS

log = logging.getLogger(__name__)


class Worker:
    """The worker's two subscriptions, and what they run on (built once the sidecar is up)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._sidecar: Sidecar | None = None
        self._gateway: Gateway | None = None
        self._runner: Runner | None = None

    async def start(self, sidecar: Sidecar) -> None:
        # Every task has a runner and a model chain, or the worker does not start.
        runners = load_runners(TASKS)
        catalog = load_catalog(self._settings.models_file)
        unserved = catalog.check(TASKS)
        log.info(
            "model profiles from %s: %s", self._settings.models_file, ", ".join(catalog.profiles)
        )
        if unserved:
            log.warning("no model for %s: their jobs fail at once", ", ".join(unserved))
        self._sidecar = sidecar
        limits = (RateWindows(sidecar.state), SharedSlots(sidecar.state))
        self._gateway = Gateway(
            catalog, limits, self._settings.max_inflight, self._settings.tenant_weights
        )
        self._runner = Runner(
            sidecar.jobs,
            self._gateway,
            sidecar.events.changed,
            self._settings,
            DeadLetters(sidecar.state),
            runners=runners,
            streams=Streams(sidecar.deltas, sidecar.jobs, sidecar.events),
        )

    async def stop(self, _: Sidecar) -> None:
        if self._gateway is not None:
            await self._gateway.close()

    async def on_job(self, delivery: Message) -> Delivery:
        assert self._runner is not None, "deliveries start after the lifespan"
        message = _job_message(delivery, "dropping it to the dead-letter topic")
        if message is None:
            return Delivery.DROP
        try:
            return await self._runner.deliver(message)
        except STORE_ERRORS as exc:
            # The store is unreachable (or the record hammered): nothing was decided, so
            # the broker should try again.
            log.warning(
                "job_id=%s store unavailable, asking for redelivery: %s", message.job_id, exc
            )
            return Delivery.RETRY

    async def on_dead_letter(self, delivery: Message) -> Delivery:
        assert self._sidecar is not None, "deliveries start after the lifespan"
        message = _job_message(delivery, "a dead letter, discarded")
        if message is None:
            return Delivery.SUCCESS
        sidecar = self._sidecar
        try:
            versioned = await sidecar.jobs.get(message.job_id)
            if versioned is None or versioned.record.status.terminal:
                return Delivery.SUCCESS
            # Listed first: should the failing write or the process fail next, the
            # redelivery finds the job listed already (listing twice is harmless), and a job
            # is never failed without its operator hearing of it.
            await DeadLetters(sidecar.state).add(versioned.record.tenant, message.job_id)
            if await give_up(sidecar.jobs, message.job_id, sidecar.events.changed) is not None:
                metrics.DEAD_LETTERED.labels(message.task).inc()
        except STORE_ERRORS as exc:
            log.warning("job_id=%s store unavailable for a dead letter: %s", message.job_id, exc)
            return Delivery.RETRY
        return Delivery.SUCCESS


def _job_message(delivery: Message, then: str) -> JobMessage | None:
    """The delivery's job message, its job bound to the log lines that follow; None (and a
    log line saying what happens to it) if it is not one."""
    try:
        message = delivery.data(JobMessage)
    except BadMessage as exc:
        log.error("not a job message, %s: %s", then, exc)
        return None
    telemetry.bind_job(message.job_id, message.task)
    return message


def create_app(
    settings: WorkerSettings | None = None, connect: Connect | None = None
) -> ServiceApp:
    """The worker app. `connect` opens its sidecar client (DaprClient by default)."""
    settings = settings or get_settings()
    worker = Worker(settings)
    app = build_app(
        "jobrelay worker",
        "0.1.0",
        dapr_lifespan(on_start=worker.start, on_stop=worker.stop, connect=connect),
        "Dapr subscriber: runs jobs from the lane topics. Not for clients.",
        ServiceApp,
    )
    # Every lane (jobrelay.lanes), each with its own prefetch in the sidecar, so a quiet
    # lane's job is not queued behind a busy one's; and the topic jobs went to before lanes.
    for topic in [*Lanes().topics(), LEGACY_TOPIC]:
        app.subscriptions.add(Subscription(PUBSUB, topic, DEAD_LETTER_TOPIC), worker.on_job)
    app.subscriptions.add(Subscription(PUBSUB, DEAD_LETTER_TOPIC), worker.on_dead_letter)
    return app
