"""POST /v1/embeddings: every configured embedder, each under its own model id."""

from __future__ import annotations

import base64

import numpy as np
import numpy.typing as npt
from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from apps.model.deps import EmbeddersDep, SettingsDep
from apps.model.openai_api import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    model_not_found,
    openai_error,
)

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", response_model=None)
async def embeddings(
    body: EmbeddingRequest, embedders: EmbeddersDep, settings: SettingsDep
) -> EmbeddingResponse | JSONResponse:
    texts = [body.input] if isinstance(body.input, str) else body.input
    embedder = embedders.get(body.model)
    if embedder is None:
        return model_not_found(body.model, sorted(embedders))
    limit = settings.max_batch
    if not texts or len(texts) > limit or any(not t for t in texts):
        return openai_error(
            400, f"input must be 1 to {limit} non-empty texts", "invalid_request_error"
        )
    # Inference releases the GIL (onnxruntime, the e5 C engine), so a worker thread keeps the
    # event loop answering health checks while a batch runs.
    result = await to_thread.run_sync(embedder.embed, texts, body.input_type)
    tokens = sum(result.token_counts)
    encode = _base64 if body.encoding_format == "base64" else _floats
    return EmbeddingResponse(
        data=[Embedding(index=i, embedding=encode(v)) for i, v in enumerate(result.vectors)],
        model=embedder.model_id,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _floats(vector: npt.NDArray[np.float32]) -> list[float]:
    return [float(x) for x in vector]


def _base64(vector: npt.NDArray[np.float32]) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
