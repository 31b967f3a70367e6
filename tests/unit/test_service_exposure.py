"""What the client-facing apps show to whoever reaches their port (issue 17, Low): with
authentication off only loopback Host names are answered (no DNS rebinding onto a
developer's machine), /metrics can move to a port of its own, and /healthz does not echo
the sidecar's error. The apps are built by jobrelay.service.build_app, served in-process by
Starlette's TestClient; the Dapr client of /healthz is a fake."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import pytest
from dapr.clients.exceptions import DaprInternalError
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jobrelay.service import ServiceApp, build_app


@asynccontextmanager
async def _no_lifespan(_: FastAPI) -> Any:
    yield


def _client(**kwargs: Any) -> TestClient:
    return TestClient(build_app("t", "0", _no_lifespan, "d", ServiceApp, **kwargs))


@pytest.fixture(autouse=True)
def auth_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JOBRELAY_AUTH_SECRET_STORE", "JOBRELAY_AUTH_JWKS_URL", "JOBRELAY_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "10.0.0.5:8000"])
def test_with_auth_off_a_foreign_host_name_is_refused(host: str) -> None:
    resp = _client(clients=True).get("/openapi.json", headers={"Host": host})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8000", "localhost:8001", "[::1]:8000", "localhost", "127.0.0.2"]
)
def test_with_auth_off_loopback_names_are_answered(host: str) -> None:
    assert _client(clients=True).get("/openapi.json", headers={"Host": host}).status_code == 200


def test_with_auth_on_any_host_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_AUTH_SECRET_STORE", "jobrelay-secrets")
    resp = _client(clients=True).get("/openapi.json", headers={"Host": "jobs.example.com"})
    assert resp.status_code == 200


def test_metrics_leave_the_app_port_when_given_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _client().get("/metrics").status_code == 200
    monkeypatch.setenv("JOBRELAY_METRICS_PORT", "9464")
    assert _client().get("/metrics").status_code == 404


class _DownSidecar:
    """FAKE sidecar whose Dapr client fails, with internal detail in its error."""

    class dapr:  # noqa: N801 (stands in for the Sidecar's `dapr` attribute)
        @staticmethod
        async def get_metadata() -> None:
            raise DaprInternalError("connection refused: redis-master.internal.svc:6379")


def test_healthz_does_not_echo_the_sidecars_error() -> None:
    client = _client()
    client.app.sidecar = _DownSidecar()  # type: ignore[attr-defined]
    resp = client.get("/healthz")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "sidecar_unavailable"
    assert "redis" not in resp.text


def test_a_recursion_error_is_the_clients_422_never_a_500() -> None:
    app = build_app("t", "0", _no_lifespan, "d", ServiceApp)

    @app.post("/deep")
    async def deep() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    resp = TestClient(app, raise_server_exceptions=False).post("/deep")
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "validation_error"
