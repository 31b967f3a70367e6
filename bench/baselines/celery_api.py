"""Baseline (b), the API side: FastAPI in front of Celery with jobrelay's submit-and-poll
API. `POST /v1/jobs` queues the task and answers 202 with a `status_url`; `GET
/v1/jobs/{id}` answers 202 + Retry-After while pending, 200 with the result once done.

The handlers are plain `def`, as most FastAPI + Celery code is written: Celery's client and
its Redis backend are blocking, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import uvicorn
from celery.result import AsyncResult
from fastapi import FastAPI, Response
from pydantic import BaseModel

from bench.baselines.celery_tasks import celery_app, embed
from bench.settings import get_settings

app = FastAPI(title="baseline: FastAPI + Celery + Redis")


class TextInput(BaseModel):
    text: str


class Submit(BaseModel):
    task: str
    input: TextInput


def _status_url(job_id: str) -> str:
    return f"{get_settings().public_base_url}/v1/jobs/{job_id}"


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/jobs", status_code=202)
def submit_job(submit: Submit, response: Response) -> dict[str, Any]:
    created = datetime.now(UTC).isoformat()
    job = embed.delay(submit.input.text, created)
    response.headers["Location"] = _status_url(job.id)
    response.headers["Retry-After"] = "1"
    return {"id": job.id, "task": submit.task, "status": "queued", "created_at": created}


@app.get("/v1/jobs/{job_id}")
def get_job(job_id: str, response: Response) -> dict[str, Any]:
    result: AsyncResult[dict[str, Any]] = AsyncResult(job_id, app=celery_app)
    outcome = result.result
    if result.state == "SUCCESS" and isinstance(outcome, dict):
        return {"id": job_id, "status": "succeeded", **outcome, "result": outcome}
    if result.state == "FAILURE":
        return {"id": job_id, "status": "failed", "error": str(outcome)}
    response.status_code = 202
    response.headers["Retry-After"] = "1"
    return {"id": job_id, "status": "queued" if result.state == "PENDING" else "running"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=get_settings().port, log_level="warning")
