"""Per-profile limits shared by worker replicas through the real Dapr state store: three
gateways (three "replicas") against one scripted backend (a test double) must together keep
to the profile's limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import anyio
import pytest
from dapr.aio.clients import DaprClient
from dapr.conf import settings as dapr_settings

from apps.worker.gateway import Gateway
from apps.worker.model_client import ModelClient
from apps.worker.profiles import Catalog, ModelProfile
from apps.worker.rate_window import RateWindows
from apps.worker.slots import SharedSlots
from jobrelay.contract import utcnow
from jobrelay.limits import LimitReached
from jobrelay.state import State
from tests.doubles.scripted_model import ScriptedModel, scripted_model
from tests.integration.stack import DAPR_API_TOKEN, Stack

pytestmark = pytest.mark.anyio


@pytest.fixture
def double() -> Iterator[ScriptedModel]:
    with scripted_model() as server:
        yield server


@pytest.fixture
async def dapr(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DaprClient]:
    # The client waits for its sidecar through the HTTP port in the SDK's settings.
    monkeypatch.setattr(dapr_settings, "DAPR_HTTP_PORT", stack.ports["worker"].dapr_http)
    # The stack's sidecars answer only callers with the token (tests/integration/stack.py).
    monkeypatch.setattr(dapr_settings, "DAPR_API_TOKEN", DAPR_API_TOKEN)
    async with DaprClient(address=f"127.0.0.1:{stack.ports['worker'].dapr_grpc}") as client:
        yield client


def _gateway(dapr: DaprClient, url: str, name: str, **limits: int) -> Gateway:
    profile = ModelProfile.model_validate(
        {"name": name, "base_url": url, "model": "m", "capabilities": ["embeddings"], **limits}
    )
    catalog = Catalog(profiles={name: profile}, tasks={"embed": [name]})
    shared = (RateWindows(State(dapr)), SharedSlots(State(dapr)))
    return Gateway(catalog, shared, max_inflight=50)


async def test_replicas_together_keep_to_the_profiles_concurrency(
    dapr: DaprClient, double: ScriptedModel
) -> None:
    double.default_delay = 0.1
    name = f"shared-{time.time_ns()}"
    replicas = [_gateway(dapr, double.url, name, max_concurrency=3) for _ in range(3)]

    async with anyio.create_task_group() as group:
        for i in range(100):
            models = ModelClient(replicas[i % 3], "embed", None, attempt=1)
            group.start_soon(models.embed, [f"text {i}"])
    for gateway in replicas:
        await gateway.close()

    assert len(double.calls()) == 100
    assert double.max_in_flight == 3  # reached, never passed


async def test_a_call_over_the_rate_limit_waits_and_gives_up_at_its_deadline(
    dapr: DaprClient, double: ScriptedModel
) -> None:
    if 60 - time.time() % 60 < 10:  # keep the whole test inside one minute's window
        await anyio.sleep(60 - time.time() % 60 + 0.5)
    gateway = _gateway(dapr, double.url, f"rate-{time.time_ns()}", requests_per_minute=5)
    for i in range(5):
        await ModelClient(gateway, "embed", None, attempt=1).embed([f"in budget {i}"])

    late = ModelClient(gateway, "embed", utcnow() + timedelta(seconds=2), attempt=1)
    started = time.monotonic()
    with pytest.raises(LimitReached):
        await late.embed(["over budget"])
    await gateway.close()

    assert time.monotonic() - started < 3
    assert len(double.calls()) == 5  # the sixth never reached the backend
