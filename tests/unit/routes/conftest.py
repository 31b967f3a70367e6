"""In-process route tests: each app built by its own create_app and served through
Starlette's TestClient, its sidecar client an in-memory FAKE (tests/doubles/memory_dapr.py,
which keeps Dapr's ETag rules). What the fake cannot show (daprd, brokers, other replicas)
the integration tests do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import cast

import pytest
from dapr.aio.clients import DaprClient

from tests.doubles.memory_dapr import MemoryDapr

# With authentication off, the apps answer loopback Host names only.
BASE_URL = "http://127.0.0.1"


@pytest.fixture
def dapr() -> MemoryDapr:
    return MemoryDapr()


@pytest.fixture
def connect(dapr: MemoryDapr) -> Callable[[], AbstractAsyncContextManager[DaprClient]]:
    """Opens the fake as the app's sidecar client; every app of a test shares one store."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[DaprClient]:
        yield cast(DaprClient, dapr)

    return opened
