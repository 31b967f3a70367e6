"""Baseline (a): the synchronous design. The model is called inside the HTTP request, as in
the reference chat app: the client holds its connection until the model has answered, and
gets 200 with the result. Same job as jobrelay's `embed`, through the same openai SDK."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from openai import AsyncOpenAI
from pydantic import BaseModel

from bench.settings import get_settings


class TextInput(BaseModel):
    text: str


class Submit(BaseModel):
    task: str
    input: TextInput


def _now() -> str:
    return datetime.now(UTC).isoformat()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client for the process, as jobrelay's worker has; max_retries=0 likewise.
    async with AsyncOpenAI(
        base_url=get_settings().model_base_url, api_key="double", max_retries=0, timeout=120
    ) as client:
        app.state.model = client
        yield


app = FastAPI(title="baseline: synchronous", lifespan=_lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/jobs")
async def run_job(submit: Submit, request: Request) -> dict[str, Any]:
    created = _now()
    model: AsyncOpenAI = request.app.state.model
    resp = await model.embeddings.create(model="all-MiniLM-L6-v2", input=[submit.input.text])
    vector = resp.data[0].embedding
    return {
        "id": uuid.uuid4().hex,
        "task": submit.task,
        "status": "succeeded",
        "created_at": created,
        "started_at": created,
        "finished_at": _now(),
        "result": {"output": {"embedding": vector, "dimensions": len(vector)}, "model": resp.model},
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=get_settings().port, log_level="warning")
