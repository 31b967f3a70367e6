"""intake: accepts jobs, stores them and publishes them; never calls a model."""

from apps.intake.routes import router
from jobrelay.service import build_app, dapr_lifespan

app = build_app(
    "jobrelay intake",
    "0.1.0",
    dapr_lifespan(),
    "Submit AI jobs. Answers 202 Accepted at once with the job's id and status URL.",
)
app.include_router(router)
