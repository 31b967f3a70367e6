"""status's routes, in process (tests/unit/routes/conftest.py): polling and cancelling a
job stored in the fake store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import cast

import anyio
import pytest
from dapr.aio.clients import DaprClient
from fastapi.testclient import TestClient

from apps.status.main import create_app
from apps.status.settings import StatusSettings
from jobrelay.contract import JobInput, JobRecord, JobResult, JobStatus, Usage
from jobrelay.state import State
from jobrelay.store import JobStore
from tests.doubles.memory_dapr import MemoryDapr
from tests.unit.routes.conftest import BASE_URL

Connect = Callable[[], AbstractAsyncContextManager[DaprClient]]


@pytest.fixture
def client(connect: Connect) -> Iterator[TestClient]:
    app = create_app(StatusSettings(public_base_url="http://status.test"), connect)
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


def _stored(dapr: MemoryDapr, record: JobRecord) -> JobRecord:
    async def store() -> None:
        await JobStore(State(cast(DaprClient, dapr)), retention_seconds=60).create(record)

    anyio.run(store)
    return record


def _job(**changes: object) -> JobRecord:
    record = JobRecord.new("embed", JobInput(text="hello"), {}, {"ref": "42"})
    return record.model_copy(update=changes)


def test_an_unknown_job_is_404(client: TestClient) -> None:
    answer = client.get(f"/v1/jobs/{'0' * 32}")

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "job_not_found"


def test_a_queued_job_is_202_with_when_to_poll_again(client: TestClient, dapr: MemoryDapr) -> None:
    job = _stored(dapr, _job())

    answer = client.get(f"/v1/jobs/{job.id}")

    assert answer.status_code == 202
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["status"] == "queued"
    assert answer.json()["metadata"] == {"ref": "42"}


def test_a_succeeded_job_is_200_with_its_result(client: TestClient, dapr: MemoryDapr) -> None:
    result = JobResult(
        output={"embedding": [0.5]}, model="m", usage=Usage(prompt_tokens=1, total_tokens=1)
    )
    running = _job().moved_to(JobStatus.RUNNING, attempts=1)
    job = _stored(dapr, running.moved_to(JobStatus.SUCCEEDED, result=result))

    answer = client.get(f"/v1/jobs/{job.id}")

    assert answer.status_code == 200
    assert answer.json()["result"]["output"] == {"embedding": [0.5]}


def test_cancelling_a_queued_job_ends_it_and_a_second_cancel_is_409(
    client: TestClient, dapr: MemoryDapr
) -> None:
    job = _stored(dapr, _job())

    cancelled = client.delete(f"/v1/jobs/{job.id}")
    again = client.delete(f"/v1/jobs/{job.id}")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{job.id}").json()["status"] == "cancelled"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"


def test_another_tenants_job_is_not_found(client: TestClient, dapr: MemoryDapr) -> None:
    job = _stored(dapr, _job(tenant="someone-else"))

    assert client.get(f"/v1/jobs/{job.id}").status_code == 404
    assert client.delete(f"/v1/jobs/{job.id}").status_code == 404
