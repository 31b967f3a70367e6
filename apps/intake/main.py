"""intake: accepts jobs, publishes and stores them; never calls a model."""

from __future__ import annotations

from fastapi.middleware.cors import CORSMiddleware

from apps.intake import admin, refusals
from apps.intake.batches import routes as batch_routes
from apps.intake.batches.engine import Batches
from apps.intake.deps import IntakeApp
from apps.intake.quotas import RATE_HEADERS, Quotas
from apps.intake.routes import router
from apps.intake.settings import (
    IntakeSettings,
    QuotaSettings,
    get_quota_settings,
    get_settings,
)
from apps.intake.submission import Intake
from jobrelay.events import new_replica_id
from jobrelay.hub import EventHub
from jobrelay.service import Connect, Sidecar, build_app, dapr_lifespan


def create_app(
    settings: IntakeSettings | None = None,
    connect: Connect | None = None,
    quotas: QuotaSettings | None = None,
) -> IntakeApp:
    """The intake app. `connect` opens its sidecar client (DaprClient by default)."""
    settings = settings or get_settings()
    hub = EventHub(new_replica_id("intake"))

    async def start(sidecar: Sidecar) -> None:
        hub.bind(sidecar.jobs)
        limits = Quotas(sidecar.state, sidecar.jobs, quotas or get_quota_settings())
        app.intake = Intake(sidecar, settings, hub, limits)
        app.batches = Batches(sidecar, settings, app.intake, limits)

    app = build_app(
        "jobrelay intake",
        "0.1.0",
        dapr_lifespan(on_start=start, clients=True, connect=connect),
        "Submit AI jobs. Answers 202 Accepted at once with the job's id and status URL.",
        IntakeApp,
        clients=True,
    )
    app.settings = settings
    refusals.install(app)
    # Job events reach the `Prefer: wait` requests waiting in this replica.
    hub.subscribe(app.subscriptions)
    app.include_router(router)
    app.include_router(admin.router)
    # OpenAI-compatible Files and Batch API (README, OpenAI Batch); its steps and counts
    # arrive on intake's own subscriptions.
    app.include_router(batch_routes.router)
    batch_routes.subscribe(app)
    # The web page (served by status, another origin) submits here from the browser.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.browser_origins(),
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Prefer"],
        expose_headers=["Location", "Retry-After", "Preference-Applied", *RATE_HEADERS],
        max_age=600,
    )
    return app
