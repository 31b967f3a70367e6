"""Prometheus metrics, served at /metrics by every app.

Names start `jobrelay_`, every job metric is labelled by `task`, and each one is counted by
the app where the thing happens (submitted in intake, cancelled in status, the rest in the
worker), so dashboards `sum by (task)` across apps and replicas. Queue wait (submit to first
start) and model time (each call to a model) are separate histograms: when jobs are slow,
the two answer "the queue or the model?".
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from jobrelay.contract import JobRecord, JobStatus

# From ten milliseconds (an embedding on the local model, a job picked up at once) to an hour
# (a deep backlog, a long generation).
_QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_MODEL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

SUBMITTED = Counter("jobrelay_jobs_submitted", "Jobs accepted and queued by intake.", ["task"])
STARTED = Counter("jobrelay_jobs_started", "Jobs a worker started for the first time.", ["task"])
FINISHED = Counter(
    "jobrelay_jobs_finished",
    "Jobs that reached a final status: succeeded, failed, cancelled or expired.",
    ["task", "status"],
)
DEAD_LETTERED = Counter(
    "jobrelay_jobs_dead_lettered",
    "Jobs given up after the broker's retries (they are also counted as failed).",
    ["task"],
)
RETRIED = Counter(
    "jobrelay_job_retries",
    "Deliveries that failed retryably and went back to the broker, by error code.",
    ["task", "code"],
)
MODEL_RETRIED = Counter(
    "jobrelay_model_call_retries",
    "Model calls retried on the same profile within one delivery (429, 5xx, timeouts).",
    ["task", "profile"],
)
QUEUE_WAIT = Histogram(
    "jobrelay_job_queue_wait_seconds",
    "From submit to a worker's first start of the job.",
    ["task"],
    buckets=_QUEUE_BUCKETS,
)
JOB_DURATION = Histogram(
    "jobrelay_job_duration_seconds",
    "From submit to the final status.",
    ["task", "status"],
    buckets=_QUEUE_BUCKETS,
)
MODEL_CALL = Histogram(
    "jobrelay_model_call_seconds",
    "One call to a model (its retries are calls too); excludes waits for shared limits.",
    ["task", "profile", "model", "outcome"],
    buckets=_MODEL_BUCKETS,
)
TOKENS = Counter(
    "jobrelay_model_tokens",
    "Tokens the models reported, by type (input, output).",
    ["task", "model", "type"],
)
MODEL_IN_FLIGHT = Gauge(
    "jobrelay_model_calls_in_flight", "Model calls waiting for their answer now.", ["profile"]
)


def count_transition(record: JobRecord) -> None:
    """Count `record`'s new status. Each transition is written once (an ETag-guarded write)
    and observed here once, by the app that wrote it."""
    task, status = record.task, record.status
    if status is JobStatus.QUEUED:
        if record.attempts == 0:
            SUBMITTED.labels(task).inc()
        else:  # a worker handed it back to the broker
            RETRIED.labels(task, record.error.code if record.error else "unknown").inc()
    elif status is JobStatus.RUNNING:
        if record.attempts == 1:
            STARTED.labels(task).inc()
            if record.queue_seconds is not None:
                QUEUE_WAIT.labels(task).observe(record.queue_seconds)
    elif status.terminal:
        FINISHED.labels(task, status.value).inc()
        if record.finished_at is not None:
            seconds = (record.finished_at - record.created_at).total_seconds()
            JOB_DURATION.labels(task, status.value).observe(max(seconds, 0.0))


router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
