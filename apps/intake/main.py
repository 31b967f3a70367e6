"""intake: accepts jobs, stores them and publishes them; never calls a model."""

from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from apps.intake import admin
from apps.intake.quotas import RATE_HEADERS, follow_jobs
from apps.intake.routes import router
from apps.intake.settings import get_settings
from jobrelay.hub import EventHub
from jobrelay.service import build_app, dapr_lifespan
from jobrelay.subscriptions import feed_hub

app: FastAPI = build_app(
    "jobrelay intake",
    "0.1.0",
    dapr_lifespan(clients=True),
    "Submit AI jobs. Answers 202 Accepted at once with the job's id and status URL.",
    clients=True,
)
app.state.hub = EventHub()
app.include_router(router)
app.include_router(admin.router)
# The web page (served by status, another origin) submits here from the browser.
app.add_middleware(
    CORSMiddleware,
    allow_origins=get_settings().browser_origins(),
    allow_methods=["POST"],
    allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Prefer"],
    expose_headers=["Location", "Retry-After", "Preference-Applied", *RATE_HEADERS],
    max_age=600,
)
dapr_app = DaprApp(app)
# Job events reach `Prefer: wait` requests waiting in this replica.
feed_hub(dapr_app, app.state.hub)
# And, once per event across replicas, the tenants' quota ledgers.
follow_jobs(dapr_app)
