"""A submit adds its job to the tenant's job index (jobrelay.job_index) before it answers,
in process (tests/unit/routes/conftest.py, the FAKE store)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

import pytest
from dapr.aio.clients import DaprClient
from fastapi.testclient import TestClient

from apps.intake.main import create_app
from apps.intake.settings import IntakeSettings, QuotaSettings
from jobrelay import keys
from tests.doubles.memory_dapr import MemoryDapr
from tests.unit.routes.conftest import BASE_URL

Connect = Callable[[], AbstractAsyncContextManager[DaprClient]]
CLASSIFY = {"task": "classify", "input": {"text": "great"}, "params": {"labels": ["a", "b"]}}


@pytest.fixture
def client(connect: Connect) -> Iterator[TestClient]:
    app = create_app(IntakeSettings(status_base_url="http://status.test"), connect, QuotaSettings())
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


def test_every_accepted_job_is_in_its_tenants_index_in_order(
    client: TestClient, dapr: MemoryDapr
) -> None:
    ids = [
        client.post("/v1/jobs", json=CLASSIFY | {"metadata": {"n": str(n)}}).json()["id"]
        for n in range(5)
    ]

    head = dapr.value(keys.index_head("default"))
    assert [e["id"] for e in head["tail"]] == ids
    assert head["tail"][2]["metadata"] == {"n": "2"}
    assert head["tail"][0]["task"] == "classify"


def test_a_job_that_cannot_be_indexed_is_not_accepted_and_never_runs(
    client: TestClient, dapr: MemoryDapr
) -> None:
    dapr.put(keys.index_head("default"), "not an index")  # every append now fails

    answer = client.post("/v1/jobs", json=CLASSIFY)

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "not_accepted"
    [(_, _, message)] = dapr.published
    job_id = json.loads(message)["job_id"]
    record = dapr.value(keys.job(job_id))
    assert record["status"] == "cancelled"  # a worker that gets its message skips it
