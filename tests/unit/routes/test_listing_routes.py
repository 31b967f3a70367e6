"""GET /v1/jobs and a queued job's `queue`, in process (tests/unit/routes/conftest.py): jobs
stored and indexed in the FAKE store (tests/doubles/memory_dapr.py). The real stack's
listing is tests/integration/test_listing.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, cast

import anyio
import pytest
from dapr.aio.clients import DaprClient
from fastapi.testclient import TestClient

from apps.intake.ledger import Ledger
from apps.status.listing import MAX_SCAN
from apps.status.main import create_app
from apps.status.settings import StatusSettings
from jobrelay import keys
from jobrelay.contract import JobInput, JobRecord, JobStatus, utcnow
from jobrelay.job_index import JobIndex
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


def _store(dapr: MemoryDapr, records: list[JobRecord], index: bool = True) -> None:
    async def store() -> None:
        state = State(cast(DaprClient, dapr))
        jobs, job_index = JobStore(state, 60), JobIndex(state, 60)
        for record in records:
            await jobs.create(record)
            if index:
                await job_index.add(record)

    anyio.run(store)


def _jobs(count: int, tenant: str = "default", **changes: Any) -> list[JobRecord]:
    start = utcnow() - timedelta(hours=1)
    out = []
    for n in range(count):
        record = JobRecord.new(
            "classify" if n % 3 == 0 else "embed",
            JobInput(text=f"job {n}"),
            {},
            {"n": str(n), "even": str(n % 2 == 0).lower()},
            tenant=tenant,
        )
        status = JobStatus.SUCCEEDED if n % 2 == 0 else JobStatus.QUEUED
        out.append(
            record.model_copy(
                update={"created_at": start + timedelta(seconds=n), "status": status, **changes}
            )
        )
    return out


def _all(client: TestClient, url: str) -> tuple[list[dict[str, Any]], int]:
    """Every result through the cursors, and how many pages that took."""
    results: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        answer = client.get(next_url.replace("http://status.test", ""))
        assert answer.status_code == 200, answer.text
        results += answer.json()["results"]
        next_url = answer.json()["next"]
        pages += 1
    return results, pages


def test_cursors_walk_every_matching_job_once_newest_first(
    client: TestClient, dapr: MemoryDapr
) -> None:
    mine = _jobs(300)
    _store(dapr, mine)
    _store(dapr, _jobs(40, tenant="someone-else"))

    results, pages = _all(client, "/v1/jobs?status=succeeded&limit=50")

    expected = [r.id for r in reversed(mine) if r.status is JobStatus.SUCCEEDED]
    assert [r["id"] for r in results] == expected
    assert pages >= 3
    assert all(r["status"] == "succeeded" for r in results)


def test_task_created_and_metadata_filters(client: TestClient, dapr: MemoryDapr) -> None:
    mine = _jobs(30)
    _store(dapr, mine)
    after, before = mine[10].created_at, mine[20].created_at

    by_task, _ = _all(client, "/v1/jobs?task=classify&limit=100")
    assert {r["id"] for r in by_task} == {r.id for r in mine if r.task == "classify"}

    since = after.isoformat().replace("+00:00", "Z")
    until = before.isoformat().replace("+00:00", "Z")
    window, _ = _all(client, f"/v1/jobs?created_after={since}&created_before={until}")
    assert [r["id"] for r in window] == [r.id for r in reversed(mine[10:20])]

    labelled, _ = _all(client, "/v1/jobs?metadata=even=true&metadata=n=4")
    assert [r["id"] for r in labelled] == [mine[4].id]


def test_a_job_whose_record_expired_is_left_out(client: TestClient, dapr: MemoryDapr) -> None:
    mine = _jobs(3)
    _store(dapr, mine)
    anyio.run(dapr.delete_state, "statestore", keys.job(mine[1].id))

    results, _ = _all(client, "/v1/jobs")
    assert [r["id"] for r in results] == [mine[2].id, mine[0].id]


def test_nothing_indexed_is_an_empty_page(client: TestClient) -> None:
    answer = client.get("/v1/jobs")
    assert answer.status_code == 200
    assert answer.json() == {"results": [], "next": None}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("cursor=garbage!", "invalid_cursor"),
        ("cursor=eyJiZWZvcmUiOiAiMSJ9", "invalid_cursor"),  # {"before": "1"}
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("metadata=novalue", "invalid_filter"),
    ],
)
def test_a_bad_query_is_400_with_a_stable_code(client: TestClient, query: str, code: str) -> None:
    answer = client.get(f"/v1/jobs?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code


def test_an_unknown_status_is_422(client: TestClient) -> None:
    answer = client.get("/v1/jobs?status=sleeping")
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


def test_a_queued_job_shows_its_place_among_its_tenants_queued_jobs(
    client: TestClient, dapr: MemoryDapr
) -> None:
    jobs = _jobs(4, status=JobStatus.QUEUED)
    _store(dapr, jobs, index=False)
    ledger = Ledger()
    for n, job in enumerate(jobs):
        ledger = ledger.add_job(job.id, 1_000 + n // 2)  # two a second: order breaks ties
    dapr.put(keys.quota("default"), ledger.dump())

    def place(job: JobRecord) -> Any:
        return client.get(f"/v1/jobs/{job.id}").json()["queue"]

    assert place(jobs[3]) == {"position": 4, "estimated_start_at": None}
    assert place(jobs[0])["position"] == 1

    # Two jobs ahead start; intake's ledger still lists them (it drops them lazily).
    _store_status(dapr, jobs[0], JobStatus.RUNNING)
    _store_status(dapr, jobs[1], JobStatus.SUCCEEDED)
    moved = place(jobs[3])
    assert moved["position"] == 2
    assert moved["estimated_start_at"] is not None  # it has been seen moving

    # Not in the ledger (no queued_jobs quota): unknown, not made up.
    dapr.put(keys.quota("default"), Ledger().dump())
    assert place(jobs[3]) == {"position": None, "estimated_start_at": None}
    # Not queued: no queue at all.
    assert client.get(f"/v1/jobs/{jobs[1].id}").json()["queue"] is None


def _store_status(dapr: MemoryDapr, record: JobRecord, status: JobStatus) -> None:
    async def change() -> None:
        jobs = JobStore(State(cast(DaprClient, dapr)), 60)
        await jobs.update(record.id, lambda r: r.model_copy(update={"status": status}))

    anyio.run(change)


def test_a_sparse_filter_examines_a_bounded_stretch_per_request(
    client: TestClient, dapr: MemoryDapr
) -> None:
    mine = _jobs(MAX_SCAN + 100)
    _store(dapr, mine)

    first = client.get("/v1/jobs?metadata=n=5").json()
    # Job 5 is older than the newest MAX_SCAN: the first answer stops short, with a cursor.
    assert first["results"] == []
    assert first["next"] is not None
    results, _ = _all(client, first["next"].replace("http://status.test", ""))
    assert [r["id"] for r in results] == [mine[5].id]
