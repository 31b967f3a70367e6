"""model: the built-in local models behind an OpenAI-compatible HTTP API on loopback.

The worker talks to it with the openai SDK exactly as it would to any hosted endpoint, so
swapping in a real provider is configuration, not code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from apps.model import chat_api, embedding_api
from apps.model.chat import MODEL_ID as CHAT_MODEL_ID
from apps.model.chat import SmolLM2
from apps.model.deps import ChatDep, EmbeddersDep, ModelApp
from apps.model.embedders import load_embedders
from apps.model.openai_api import ModelCard, ModelList, openai_error
from apps.model.settings import ModelSettings, get_settings
from jobrelay import metrics, telemetry

log = logging.getLogger(__name__)


def _lifespan(settings: ModelSettings) -> Callable[[ModelApp], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: ModelApp) -> AsyncIterator[None]:
        # Everything loads before the first request (how long: docs/local-model.md), so no
        # request pays for a cold model and /healthz means ready.
        started = time.monotonic()
        app.settings = settings
        app.embedders = load_embedders(settings)
        app.chat = (
            SmolLM2(settings.threads, settings.chat_context_tokens, settings.chat_parallel)
            if settings.chat
            else None
        )
        log.info("local models ready in %.2f s", time.monotonic() - started)
        yield

    return lifespan


def create_app(settings: ModelSettings | None = None) -> ModelApp:
    """A new app with its own models (`python -m apps.model` serves one; tests make their own)."""
    app = ModelApp(
        title="jobrelay local model",
        version="0.2.0",
        description="Local embeddings (all-MiniLM-L6-v2, multilingual-e5-small) and a small chat "
        "model (SmolLM2-135M-Instruct) behind the OpenAI API; no key, no network.",
        lifespan=_lifespan(settings or get_settings()),
        # FastAPI's own telemetry off: jobrelay.telemetry instruments the app, when exporting.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(embedding_api.router)
    app.include_router(chat_api.router)
    app.include_router(meta)
    app.include_router(metrics.router)
    app.add_exception_handler(RequestValidationError, _invalid)
    telemetry.instrument_app(app, "jobrelay-model")
    return app


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for this type only
    return openai_error(400, str(exc.errors()[:3]), "invalid_request_error")


meta = APIRouter(tags=["meta"])


@meta.get("/healthz")
async def healthz(embedders: EmbeddersDep) -> dict[str, str]:
    # The lifespan has finished (so every model is loaded) before any request is served.
    return {"status": "ok"}


@meta.get("/v1/models")
async def models(embedders: EmbeddersDep, chat: ChatDep) -> ModelList:
    ids = list(embedders)
    if chat is not None:
        ids.append(CHAT_MODEL_ID)
    return ModelList(data=[ModelCard(id=model_id) for model_id in ids])
