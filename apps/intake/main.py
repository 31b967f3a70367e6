"""intake: accepts jobs, stores them and publishes them; never calls a model."""

from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI

from apps.intake.routes import router
from jobrelay.hub import EventHub
from jobrelay.service import build_app, dapr_lifespan
from jobrelay.subscriptions import feed_hub

app: FastAPI = build_app(
    "jobrelay intake",
    "0.1.0",
    dapr_lifespan(),
    "Submit AI jobs. Answers 202 Accepted at once with the job's id and status URL.",
)
app.state.hub = EventHub()
app.include_router(router)
# Job events reach `Prefer: wait` requests waiting in this replica.
feed_hub(DaprApp(app), app.state.hub)
