"""intake's routes, in process (tests/unit/routes/conftest.py): what a submit answers and
what it leaves in the store and on the broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

import pytest
from dapr.aio.clients import DaprClient
from fastapi.testclient import TestClient

from apps.intake.main import create_app
from apps.intake.settings import IntakeSettings, QuotaSettings
from jobrelay import keys
from jobrelay.contract import JobMessage, Priority
from jobrelay.lanes import Lanes, lane_topic
from tests.doubles.memory_dapr import MemoryDapr
from tests.unit.routes.conftest import BASE_URL

Connect = Callable[[], AbstractAsyncContextManager[DaprClient]]
CLASSIFY = {"task": "classify", "input": {"text": "great"}, "params": {"labels": ["a", "b"]}}


def _client(connect: Connect, quotas: QuotaSettings | None = None) -> Iterator[TestClient]:
    settings = IntakeSettings(status_base_url="http://status.test")
    app = create_app(settings, connect, quotas or QuotaSettings())
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def client(connect: Connect) -> Iterator[TestClient]:
    yield from _client(connect)


def test_a_submit_answers_202_publishes_then_stores(client: TestClient, dapr: MemoryDapr) -> None:
    answer = client.post("/v1/jobs", json=CLASSIFY)

    assert answer.status_code == 202
    job = answer.json()
    assert answer.headers["Location"] == f"http://status.test/v1/jobs/{job['id']}"
    assert answer.headers["Retry-After"] == "1"
    assert job["status"] == "queued"
    [(_, topic, data)] = dapr.published
    assert topic == Lanes().topic(Priority.NORMAL, "default")
    assert JobMessage.model_validate_json(data).job_id == job["id"]
    assert dapr.has(keys.job(job["id"]))
    assert job["priority"] == "normal"


def test_a_high_priority_job_goes_to_its_high_lane(client: TestClient, dapr: MemoryDapr) -> None:
    answer = client.post("/v1/jobs", json=CLASSIFY | {"priority": "high"})

    assert answer.status_code == 202
    assert answer.json()["priority"] == "high"
    [(_, topic, _)] = dapr.published
    assert topic == lane_topic(Priority.HIGH, Lanes().shard("default"))


def test_an_unknown_priority_is_422_and_publishes_nothing(
    client: TestClient, dapr: MemoryDapr
) -> None:
    answer = client.post("/v1/jobs", json=CLASSIFY | {"priority": "urgent"})

    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"
    assert dapr.published == []


def test_a_file_named_in_json_is_422_and_the_key_it_names_is_neither_read_nor_deleted(
    client: TestClient, dapr: MemoryDapr
) -> None:
    # Only an upload gives a job a file: a reference in JSON could point the worker (or a
    # refused submit's clean-up) at any key, here another tenant's job list.
    dapr.put(keys.index_page("acme", 0) + ":0", '["acme\'s jobs"]')
    ref = {
        "key": keys.index_page("acme", 0),
        "content_type": "text/plain",
        "size": 0,
        "chunks": 1,
        "sha256": "0" * 64,
    }
    answer = client.post("/v1/jobs", json={"task": "summarize", "input": {"file": ref}})

    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_input"
    assert "multipart/form-data" in answer.json()["error"]["message"]
    assert dapr.published == []
    assert dapr.value(keys.index_page("acme", 0) + ":0") == ["acme's jobs"]


def test_an_unknown_task_is_400_and_leaves_nothing(client: TestClient, dapr: MemoryDapr) -> None:
    answer = client.post("/v1/jobs", json=CLASSIFY | {"task": "nope"})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "unknown_task"
    assert dapr.published == []


def test_bad_params_are_422_with_the_field_named(client: TestClient) -> None:
    answer = client.post("/v1/jobs", json=CLASSIFY | {"params": {"labels": ["only one"]}})

    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_params"
    assert "labels" in answer.json()["error"]["message"]


def test_the_same_idempotency_key_returns_the_same_job(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = client.post("/v1/jobs", json=CLASSIFY, headers=headers).json()
    again = client.post("/v1/jobs", json=CLASSIFY, headers=headers).json()
    other = client.post("/v1/jobs", json=CLASSIFY | {"input": {"text": "x"}}, headers=headers)

    assert again["id"] == first["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_an_overlong_idempotency_key_is_400(client: TestClient) -> None:
    answer = client.post("/v1/jobs", json=CLASSIFY, headers={"Idempotency-Key": "k" * 256})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_idempotency_key"


def test_over_the_quota_is_429_with_when_to_retry(connect: Connect, dapr: MemoryDapr) -> None:
    quotas = QuotaSettings(submissions_per_minute=2, queued_jobs=None)
    for client in _client(connect, quotas):
        accepted = [client.post("/v1/jobs", json=CLASSIFY) for _ in range(2)]
        refused = client.post("/v1/jobs", json=CLASSIFY)

    assert [a.status_code for a in accepted] == [202, 202]
    assert accepted[1].headers["X-RateLimit-Remaining"] == "0"
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(dapr.published) == 2  # the refused one was never published


def test_the_openapi_lists_the_tasks_of_the_catalog(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]

    assert "read_document" in body["schema"]["properties"]["task"]["enum"]
