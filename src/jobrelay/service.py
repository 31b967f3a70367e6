"""What every jobrelay app does the same way: logging, the Dapr client, /healthz, serving."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, TypeVar

import uvicorn
from dapr.aio.clients import DaprClient
from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import start_http_server
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jobrelay import auth, logs, metrics, telemetry
from jobrelay.contract import ErrorBody
from jobrelay.deltas import DeltaLog
from jobrelay.dependencies import from_app
from jobrelay.errors import DAPR_ERRORS, ApiError, error_response, install_error_handlers
from jobrelay.events import Events
from jobrelay.settings import MetricsSettings, ServiceSettings, SidecarSettings, StoreSettings
from jobrelay.state import State
from jobrelay.store import JobStore
from jobrelay.subscriptions import Subscriptions

log = logging.getLogger(__name__)

# A sidecar that does not answer its metadata call within this is reported unhealthy.
_HEALTH_TIMEOUT_SECONDS = 2.0


def configure_logging(level: str) -> None:
    logs.configure(level)


class Sidecar:
    """What an app holds for its whole life: one Dapr client (never one per request; its
    constructor waits for the sidecar) and what is built on it."""

    def __init__(self, dapr: DaprClient, retention_seconds: int) -> None:
        self.dapr = dapr
        self.state = State(dapr)
        self.jobs = JobStore(self.state, retention_seconds)
        self.events = Events(dapr)
        self.deltas = DeltaLog(self.state)


class ServiceApp(FastAPI):
    """A jobrelay app: its sidecar, typed, once the lifespan has started it, and its
    subscriptions, whose deliveries it serves ahead of the FastAPI stack (see
    jobrelay.subscriptions for why)."""

    sidecar: Sidecar
    subscriptions: Subscriptions
    # Clients' credentials, for an app that answers clients (loaded by its lifespan).
    authenticator: auth.Authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and Subscriptions.serves(scope["path"]):
            await self.subscriptions(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


SidecarDep = Annotated[Sidecar, Depends(from_app(ServiceApp, lambda app: app.sidecar))]
JobsDep = Annotated[JobStore, Depends(from_app(ServiceApp, lambda app: app.sidecar.jobs))]
A = TypeVar("A", bound=ServiceApp)

Hook = Callable[[Sidecar], Awaitable[None]]
Lifespan = Callable[[ServiceApp], AbstractAsyncContextManager[None]]
# Opens the app's client to its sidecar: DaprClient itself, which reads DAPR_GRPC_PORT and
# DAPR_API_TOKEN (`dapr run` sets both); a test's in-memory fake in in-process route tests.
Connect = Callable[[], AbstractAsyncContextManager[DaprClient]]


def dapr_lifespan(
    on_start: Hook | None = None,
    on_stop: Hook | None = None,
    clients: bool = False,
    connect: Connect | None = None,
) -> Lifespan:
    """A lifespan that opens the app's sidecar client, runs `on_start` with it, and
    `on_stop` when the app stops.

    `clients`: the app answers clients, so it loads their API keys (jobrelay.auth) first.
    """

    @asynccontextmanager
    async def lifespan(app: ServiceApp) -> AsyncIterator[None]:
        async with (connect or DaprClient)() as dapr:
            app.sidecar = Sidecar(dapr, StoreSettings().retention_seconds)
            refreshing: asyncio.Task[None] | None = None
            if clients:
                app.authenticator = await auth.load(dapr)
                refreshing = asyncio.create_task(auth.keep_keys_fresh(dapr, app.authenticator))
            if on_start:
                await on_start(app.sidecar)
            try:
                yield
            finally:
                if refreshing is not None:
                    refreshing.cancel()
                if on_stop:
                    await on_stop(app.sidecar)

    return lifespan


health = APIRouter(tags=["health"])


@health.get("/healthz", responses={503: {"model": ErrorBody}})
async def healthz(sidecar: SidecarDep) -> dict[str, str]:
    """200 once this app's Dapr sidecar answers; 503 while it does not."""
    try:
        await asyncio.wait_for(sidecar.dapr.get_metadata(), _HEALTH_TIMEOUT_SECONDS)
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


@functools.lru_cache(maxsize=64)  # a client sends the same Host every time: parse it once
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
    title: str,
    version: str,
    lifespan: Lifespan,
    description: str,
    kind: type[A],
    clients: bool = False,
) -> A:
    """An app of `kind` (ServiceApp, or an app's own subclass naming what its lifespan
    builds), with what every jobrelay app has: errors, health, metrics, tracing.

    `clients`: the app answers clients (intake, status), so with authentication off it
    answers loopback Host names only."""
    # FastAPI's own telemetry off: jobrelay.telemetry instruments the app (once, and only
    # when its spans go somewhere); Prometheus has the metrics.
    app = kind(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    # `dapr run` and the Kubernetes injector give the app the same APP_API_TOKEN as its
    # sidecar. Unset (the local default), sidecar routes stay open, as on loopback they may.
    app_token = SidecarSettings().app_api_token
    token = app_token.get_secret_value() if app_token is not None else None
    app.subscriptions = Subscriptions(token)
    if token is not None:
        app.add_middleware(AppTokenMiddleware, token=token)
    if clients and not auth.AuthSettings().enabled:
        app.add_middleware(LoopbackHostMiddleware)
    app.include_router(health)
    if MetricsSettings().port is None:
        app.include_router(metrics.router)
    # "jobrelay intake" -> service.name "jobrelay-intake": apart from its sidecar's spans,
    # which daprd names by the bare app id.
    telemetry.instrument_app(app, title.replace(" ", "-"))
    return app


def serve(factory: str, settings: ServiceSettings, clients: bool = False) -> None:
    """Run the app `factory` (`module:create_app`) makes under uvicorn, at the settings'
    address; the app module's `__main__`.

    `clients`: the app answers clients, so it refuses a non-loopback address unless
    authentication is configured, and logs their requests (an app that only its sidecar
    calls has nothing for an access log: its jobs' transitions tell what it did).
    """
    configure_logging(settings.log_level)
    if clients:
        auth.check_bind(settings.host)
    metrics_port = MetricsSettings().port
    if metrics_port is not None:
        # Its own port, which a NetworkPolicy can keep from the public (k8s/base).
        start_http_server(metrics_port, addr=settings.host)
    uvicorn.run(
        factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=clients,
        timeout_graceful_shutdown=30,
    )
    telemetry.shutdown()
