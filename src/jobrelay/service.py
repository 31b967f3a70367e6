"""What every jobrelay app does the same way: logging, the Dapr client, /healthz, serving."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

import uvicorn
from dapr.aio.clients import DaprClient
from fastapi import APIRouter, Depends, FastAPI, Request

from jobrelay import logs, metrics, telemetry
from jobrelay.errors import DAPR_ERRORS, ApiError, ErrorBody, install_error_handlers
from jobrelay.settings import ServiceSettings, StoreSettings
from jobrelay.store import JobStore

log = logging.getLogger(__name__)

# A sidecar that does not answer its metadata call within this is reported unhealthy.
_HEALTH_TIMEOUT_SECONDS = 2.0


def configure_logging(level: str) -> None:
    logs.configure(level)


def get_dapr(request: Request) -> DaprClient:
    dapr: DaprClient = request.app.state.dapr
    return dapr


def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


DaprDep = Annotated[DaprClient, Depends(get_dapr)]
StoreDep = Annotated[JobStore, Depends(get_store)]

Hook = Callable[[FastAPI], Awaitable[None]]


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def dapr_lifespan(on_start: Hook | None = None, on_stop: Hook | None = None) -> Lifespan:
    """A lifespan that opens one Dapr client for the app's life (never one per request)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The client reads DAPR_GRPC_PORT and DAPR_API_TOKEN, which `dapr run` sets.
        async with DaprClient() as dapr:
            app.state.dapr = dapr
            app.state.store = JobStore(dapr, StoreSettings().retention_seconds)
            if on_start:
                await on_start(app)
            try:
                yield
            finally:
                if on_stop:
                    await on_stop(app)

    return lifespan


health = APIRouter(tags=["health"])


@health.get("/healthz", responses={503: {"model": ErrorBody}})
async def healthz(dapr: DaprDep) -> dict[str, str]:
    """200 once this app's Dapr sidecar answers; 503 while it does not."""
    try:
        await asyncio.wait_for(dapr.get_metadata(), _HEALTH_TIMEOUT_SECONDS)
    except TimeoutError as exc:
        raise ApiError(
            503,
            "sidecar_unavailable",
            "the Dapr sidecar did not answer in time",
            {"Retry-After": "1"},
        ) from exc
    except DAPR_ERRORS as exc:
        raise ApiError(
            503,
            "sidecar_unavailable",
            f"the Dapr sidecar is not reachable: {exc}",
            {"Retry-After": "1"},
        ) from exc
    return {"status": "ok"}


def build_app(title: str, version: str, lifespan: Lifespan, description: str) -> FastAPI:
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health)
    app.include_router(metrics.router)
    # "jobrelay intake" -> service.name "jobrelay-intake": apart from its sidecar's spans,
    # which daprd names by the bare app id.
    telemetry.instrument_app(app, title.replace(" ", "-"))
    return app


def serve(app_path: str, settings: ServiceSettings) -> None:
    """Run an app under uvicorn with the settings' address; the app module's `__main__`."""
    configure_logging(settings.log_level)
    uvicorn.run(
        app_path,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    telemetry.shutdown()
