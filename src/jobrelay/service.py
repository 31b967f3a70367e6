"""What every jobrelay app does the same way: logging, the Dapr client, /healthz, serving."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

import uvicorn
from dapr.aio.clients import DaprClient
from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import start_http_server
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jobrelay import auth, logs, metrics, telemetry
from jobrelay.errors import DAPR_ERRORS, ApiError, ErrorBody, error_response, install_error_handlers
from jobrelay.settings import MetricsSettings, ServiceSettings, SidecarSettings, StoreSettings
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


def dapr_lifespan(
    on_start: Hook | None = None, on_stop: Hook | None = None, clients: bool = False
) -> Lifespan:
    """A lifespan that opens one Dapr client for the app's life (never one per request).

    `clients`: the app answers clients, so it loads their API keys (jobrelay.auth) first.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The client reads DAPR_GRPC_PORT and DAPR_API_TOKEN, which `dapr run` sets.
        async with DaprClient() as dapr:
            app.state.dapr = dapr
            app.state.store = JobStore(dapr, StoreSettings().retention_seconds)
            refreshing: asyncio.Task[None] | None = None
            if clients:
                app.state.auth = await auth.load(dapr)
                refreshing = asyncio.create_task(auth.keep_keys_fresh(dapr, app.state.auth))
            if on_start:
                await on_start(app)
            try:
                yield
            finally:
                if refreshing is not None:
                    refreshing.cancel()
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
        # The detail (addresses, component names) is for the operator's log, not for whoever
        # can reach this port.
        log.warning("healthz: the Dapr sidecar is not reachable: %s", exc)
        raise ApiError(
            503, "sidecar_unavailable", "the Dapr sidecar is not reachable", {"Retry-After": "1"}
        ) from exc
    return {"status": "ok"}


# Where a sidecar calls its app: the subscription list and config, and the subscriptions'
# routes (jobrelay.subscriptions). Clients have no business there.
_SIDECAR_PATHS = ("/dapr/", "/events/")


class AppTokenMiddleware:
    """Sidecar routes answer only requests carrying APP_API_TOKEN in `dapr-api-token`.

    daprd sends that header when it has APP_API_TOKEN, but dapr-ext-fastapi never checks it:
    without this, anyone who reaches the app's port could post forged job messages (say, a
    `jobs` message for another tenant's job) straight to a subscription route. Pure ASGI, so
    the client-facing event streams pass through untouched.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_SIDECAR_PATHS):
            given = Headers(scope=scope).get("dapr-api-token", "").encode()
            if not hmac.compare_digest(given, self._token):
                refused = error_response(401, "unauthorized", "sidecar routes need the app token")
                await refused(scope, receive, send)
                return
        await self._app(scope, receive, send)


def _loopback_host(header: str) -> bool:
    """Whether a Host header (a name or an address, with an optional port) names loopback."""
    if header.startswith("["):
        host = header[1:].split("]", 1)[0]
    else:
        host = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return auth.is_loopback(host) or host.endswith(".localhost")


class LoopbackHostMiddleware:
    """With authentication off (loopback only), answer only requests whose Host is a
    loopback name: a page elsewhere whose name a DNS rebinding points at 127.0.0.1 sends its
    own Host, and would otherwise read this app as if it were the developer."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "")
            if not _loopback_host(host):
                refused = error_response(
                    400,
                    "host_not_allowed",
                    "authentication is off, so only loopback names (127.0.0.1, localhost, "
                    "[::1]) may be used to reach this service",
                )
                await refused(scope, receive, send)
                return
        await self._app(scope, receive, send)


def build_app(
    title: str, version: str, lifespan: Lifespan, description: str, clients: bool = False
) -> FastAPI:
    """`clients`: the app answers clients (intake, status), so with authentication off it
    answers loopback Host names only."""
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    install_error_handlers(app)
    # `dapr run` and the Kubernetes injector give the app the same APP_API_TOKEN as its
    # sidecar. Unset (the local default), sidecar routes stay open, as on loopback they may.
    app_token = SidecarSettings().app_api_token
    if app_token is not None:
        app.add_middleware(AppTokenMiddleware, token=app_token.get_secret_value())
    if clients and not auth.AuthSettings().enabled:
        app.add_middleware(LoopbackHostMiddleware)
    app.include_router(health)
    if MetricsSettings().port is None:
        app.include_router(metrics.router)
    # "jobrelay intake" -> service.name "jobrelay-intake": apart from its sidecar's spans,
    # which daprd names by the bare app id.
    telemetry.instrument_app(app, title.replace(" ", "-"))
    return app


def serve(app_path: str, settings: ServiceSettings, clients: bool = False) -> None:
    """Run an app under uvicorn with the settings' address; the app module's `__main__`.

    `clients`: the app answers clients, so it refuses a non-loopback address unless
    authentication is configured.
    """
    configure_logging(settings.log_level)
    if clients:
        auth.check_bind(settings.host)
    metrics_port = MetricsSettings().port
    if metrics_port is not None:
        # Its own port, which a NetworkPolicy can keep from the public (k8s/base).
        start_http_server(metrics_port, addr=settings.host)
    uvicorn.run(
        app_path,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    telemetry.shutdown()
