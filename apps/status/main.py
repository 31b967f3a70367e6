"""status: where clients collect results: 202 + Retry-After while pending, 200 when done."""

from apps.status.routes import router
from jobrelay.service import build_app, dapr_lifespan

app = build_app(
    "jobrelay status",
    "0.1.0",
    dapr_lifespan(),
    "Read a job's status and result.",
)
app.include_router(router)
