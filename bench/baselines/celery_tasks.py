"""Baseline (b), the worker side: a Celery app on Redis (broker and result backend) whose one
task runs the same `embed` job on the model double, through the same openai SDK.

Started as `celery -A bench.baselines.celery_tasks worker --pool threads --concurrency 8`
(bench/stacks.py, INFLIGHT): as many jobs in flight as jobrelay's worker allows itself
(JOBRELAY_WORKER_MAX_INFLIGHT), so both designs offer the model the same parallelism.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery
from openai import OpenAI

from bench.settings import get_settings

_settings = get_settings()
celery_app = Celery("bench", broker=_settings.redis_url, backend=_settings.redis_url)
celery_app.conf.update(
    # Acknowledge after the task ran, as jobrelay's worker does (a worker that dies mid-job
    # leaves it to be redelivered): the comparable delivery guarantee, not Celery's default.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)
_model = OpenAI(base_url=_settings.model_base_url, api_key="double", max_retries=0, timeout=120)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@celery_app.task(name="bench.embed")
def embed(text: str, created_at: str) -> dict[str, Any]:
    started = _now()
    resp = _model.embeddings.create(model="all-MiniLM-L6-v2", input=[text])
    vector = resp.data[0].embedding
    return {
        "output": {"embedding": vector, "dimensions": len(vector)},
        "model": resp.model,
        "created_at": created_at,
        "started_at": started,
        "finished_at": _now(),
    }
