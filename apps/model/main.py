"""model: the built-in local model behind an OpenAI-compatible HTTP API on loopback.

The worker talks to it with the openai SDK exactly as it would to any hosted endpoint, so
swapping in a real provider is configuration, not code.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import numpy as np
import numpy.typing as npt
from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from apps.model.embedder import MODEL_ID, MiniLM
from apps.model.openai_api import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    OpenAIError,
    OpenAIErrorBody,
)
from apps.model.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.embedder = MiniLM(get_settings().threads)
    yield


app = FastAPI(
    title="jobrelay local model",
    version="0.1.0",
    description="all-MiniLM-L6-v2 embeddings behind the OpenAI API; no key, no network.",
    lifespan=lifespan,
)


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    body = OpenAIErrorBody(error=OpenAIError(message=message, type=kind, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


@app.exception_handler(RequestValidationError)
async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(400, str(exc.errors()[:3]), "invalid_request_error")


def get_embedder(request: Request) -> MiniLM:
    embedder: MiniLM = request.app.state.embedder
    return embedder


EmbedderDep = Annotated[MiniLM, Depends(get_embedder)]


@app.get("/healthz")
async def healthz(_: EmbedderDep) -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/models")
async def models() -> ModelList:
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@app.post("/v1/embeddings", response_model=None)
async def embeddings(
    body: EmbeddingRequest, embedder: EmbedderDep
) -> EmbeddingResponse | JSONResponse:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if body.model != MODEL_ID:
        return _error(
            404,
            f"model {body.model!r} is not served here; try {MODEL_ID!r}",
            "invalid_request_error",
            "model_not_found",
        )
    if not texts or len(texts) > get_settings().max_batch or any(not t for t in texts):
        return _error(
            400,
            f"input must be 1 to {get_settings().max_batch} non-empty texts",
            "invalid_request_error",
        )
    # Inference holds the GIL only briefly (onnxruntime releases it), so a worker thread keeps
    # the event loop answering health checks while a batch runs.
    result = await to_thread.run_sync(embedder.embed, texts)
    tokens = sum(result.token_counts)
    encode = _base64 if body.encoding_format == "base64" else _floats
    return EmbeddingResponse(
        data=[Embedding(index=i, embedding=encode(v)) for i, v in enumerate(result.vectors)],
        model=MODEL_ID,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _floats(vector: npt.NDArray[np.float32]) -> list[float]:
    return [float(x) for x in vector]


def _base64(vector: npt.NDArray[np.float32]) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
