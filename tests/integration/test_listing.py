"""GET /v1/jobs and a queued job's `queue` on the running stack: real intake, worker and
status behind real daprd, the index in the real state store. Each test acts as a tenant of
its own (a JWT from the session's identity provider), so no other test's jobs are listed."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.integration.helpers import classify, submit_all, wait_done
from tests.integration.stack import Stack
from tests.integration.test_cli import run_cli

JOBS = 500


def _tenant_client(stack: Stack, tenant: str) -> httpx.Client:
    assert stack.idp is not None
    token = stack.idp.token(tenant, lifetime=3600)
    return httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def tenant() -> str:
    return f"lister-{uuid.uuid4().hex[:8]}"


def _submit_many(client: httpx.Client, stack: Stack, bodies: list[dict[str, Any]]) -> list[str]:
    return [job["id"] for job in submit_all(client, stack, bodies, threads=16)]


def _walk(client: httpx.Client, url: str) -> tuple[list[dict[str, Any]], int]:
    """Every result through `next`, and the pages it took."""
    results: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        answer = client.get(next_url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["results"]) <= 50
        results += body["results"]
        next_url = body["next"]
        pages += 1
    return results, pages


def _wait_all_done(client: httpx.Client, stack: Stack, ids: list[str]) -> None:
    deadline = time.monotonic() + 600
    for job_id in ids:
        left = max(deadline - time.monotonic(), 1)
        assert wait_done(client, f"{stack.url('status')}/v1/jobs/{job_id}", left)


def test_a_tenants_500_jobs_come_back_once_each_through_the_cursors(
    stack: Stack, tenant: str
) -> None:
    with (
        _tenant_client(stack, tenant) as mine,
        _tenant_client(stack, f"{tenant}-other") as other,
    ):
        theirs = _submit_many(other, stack, [classify(f"other {n}") for n in range(20)])
        bodies = [
            classify(f"listed {n}", metadata={"n": str(n), "half": str(n % 2)}) for n in range(JOBS)
        ]
        ids = _submit_many(mine, stack, bodies)
        _wait_all_done(mine, stack, ids)

        results, pages = _walk(mine, f"{stack.url('status')}/v1/jobs?status=succeeded&limit=50")

        listed = [r["id"] for r in results]
        assert len(listed) == len(set(listed)), "a job came back twice"
        assert set(listed) == set(ids), "every one of the tenant's jobs, exactly"
        assert not set(listed) & set(theirs), "another tenant's job was listed"
        assert pages >= JOBS // 50
        created = [r["created_at"] for r in results]
        # Newest first: accept order, which is creation order up to the submits' overlap.
        assert created[0] >= created[-1]

        # The other tenant sees its own 20 and none of these.
        _wait_all_done(other, stack, theirs)
        their_list, _ = _walk(other, f"{stack.url('status')}/v1/jobs?limit=50")
        assert {r["id"] for r in their_list} == set(theirs)


def test_filters_by_task_created_and_metadata(stack: Stack, tenant: str) -> None:
    status = stack.url("status")
    with _tenant_client(stack, tenant) as mine:
        first = _submit_many(
            mine, stack, [classify(f"a {n}", metadata={"k": "a"}) for n in range(3)]
        )
        # Submitted side by side, so accepted in any order: the newest of them is the middle.
        created = {
            job_id: datetime.fromisoformat(
                mine.get(f"{status}/v1/jobs/{job_id}").json()["created_at"]
            )
            for job_id in first
        }
        middle = max(created.values()).isoformat()
        time.sleep(0.05)
        embeds = _submit_many(
            mine,
            stack,
            [
                {"task": "embed", "input": {"text": f"b {n}"}, "metadata": {"k": "b"}}
                for n in range(2)
            ],
        )

        by_task, _ = _walk(mine, f"{status}/v1/jobs?task=embed")
        assert {r["id"] for r in by_task} == set(embeds)
        by_label, _ = _walk(mine, f"{status}/v1/jobs?metadata=k=a")
        assert {r["id"] for r in by_label} == set(first)
        later, _ = _walk(mine, f"{status}/v1/jobs?created_after={middle.replace('+', '%2B')}")
        assert set(embeds) <= {r["id"] for r in later}
        older = {job_id for job_id, at in created.items() if at < max(created.values())}
        assert not older & {r["id"] for r in later}


@pytest.mark.parametrize(
    ("query", "status_code", "code"),
    [
        ("cursor=not-a-cursor", 400, "invalid_cursor"),
        ("limit=0", 400, "invalid_limit"),
        ("limit=1000", 400, "invalid_limit"),
        ("limit=ten", 422, "validation_error"),
        ("status=sleeping", 422, "validation_error"),
        ("metadata=nokey", 400, "invalid_filter"),
    ],
)
def test_a_bad_query_is_a_4xx_with_a_stable_code(
    stack: Stack, client: httpx.Client, query: str, status_code: int, code: str
) -> None:
    answer = client.get(f"{stack.url('status')}/v1/jobs?{query}")
    assert answer.status_code == status_code, answer.text
    assert answer.json()["error"]["code"] == code


def test_a_queued_jobs_position_falls_as_the_backlog_drains(stack: Stack, tenant: str) -> None:
    with _tenant_client(stack, tenant) as mine:
        ids = _submit_many(mine, stack, [classify(f"backlog {n}") for n in range(120)])
        last = f"{stack.url('status')}/v1/jobs/{ids[-1]}"
        seen: list[int] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = mine.get(last).json()
            if job["status"] != "queued":
                assert job["queue"] is None
                break
            position = job["queue"]["position"]
            if position is not None:  # null until intake's ledger has the job (write-behind)
                seen.append(position)
            time.sleep(0.2)
        assert len(seen) >= 2, f"never seen queued with a position: {seen}"
        assert seen == sorted(seen, reverse=True), seen
        assert seen[-1] < seen[0], seen


def test_the_cli_lists_the_callers_jobs_with_filters(stack: Stack, client: httpx.Client) -> None:
    run = uuid.uuid4().hex
    ids = _submit_many(
        client, stack, [classify(f"cli {n}", metadata={"run": run}) for n in range(3)]
    )
    _wait_all_done(client, stack, ids)

    as_json = run_cli(stack, "list", "--metadata", f"run={run}", "--status", "succeeded", "--json")
    assert as_json.returncode == 0, as_json.stderr
    # The three went in concurrently: any order among them, each once.
    assert sorted(job["id"] for job in json.loads(as_json.stdout)) == sorted(ids)

    table = run_cli(stack, "list", "--metadata", f"run={run}", "--limit", "2")
    assert table.returncode == 0, table.stderr
    assert "2 jobs, newest first" in table.stdout
    assert sum(job_id in table.stdout for job_id in ids) == 2

    refused = run_cli(stack, "list", "--metadata", "novalue")
    assert refused.returncode != 0
