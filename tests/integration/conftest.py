from collections.abc import Iterator

import httpx
import pytest

from tests.integration import profiles
from tests.integration import stack as stack_module
from tests.integration.stack import Stack


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One real stack per component profile for the whole session: starting daprd four
    times takes seconds. pytest runs every test on one profile, then tears it down before
    the next (the profiles come from JOBRELAY_TEST_PROFILES; see pytest_generate_tests).
    A param `redis:go` is the redis profile with the Go worker in place of the Python one."""
    profile, _, worker = str(request.param).partition(":")
    running = stack_module.start(
        tmp_path_factory.mktemp(f"stack-{profile}-{worker or 'python'}"),
        profile,
        worker=worker or "python",
    )
    try:
        yield running
    finally:
        stack_module.stop(running)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that uses the stack runs once per selected profile, with the same code and
    # the same assertions: that a swap of components/ folder is all it takes.
    # The tests marked `polyglot` (those of the tasks the Go worker runs) also run once more
    # on the redis profile with the Go worker alone (profiles.go_pass).
    if "stack" in metafunc.fixturenames:
        params = profiles.selected()
        if metafunc.definition.get_closest_marker("polyglot") and profiles.go_pass():
            params = [*params, "redis:go"]
        metafunc.parametrize("stack", params, indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers=stack_module.client_headers()) as c:
        yield c
