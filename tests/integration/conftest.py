from collections.abc import Iterator

import httpx
import pytest

from tests.integration import stack as stack_module
from tests.integration.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One real stack for the whole session: starting daprd four times takes seconds."""
    running = stack_module.start(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        stack_module.stop(running)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c
