import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop uvicorn and the Dapr SDK use."""
    return "asyncio"
