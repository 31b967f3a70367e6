"""Per-tenant quotas on the running stack: the ledgers live in the real state store, so what
intake counts is what every replica would count. Each test acts as a tenant of its own with
small limits (QUOTA_TENANTS in tests/integration/stack.py); every other tenant keeps the
generous defaults."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.helpers import store_state, submit, wait_done
from tests.integration.stack import QUOTA_TENANTS, Stack, client_headers


def _client(tenant: str) -> httpx.Client:
    return httpx.Client(timeout=30, headers=client_headers(tenant))


@pytest.fixture
def rate_client() -> Iterator[httpx.Client]:
    with _client("quota-rate") as c:
        yield c


def _embed(text: str | None = None) -> dict[str, object]:
    return {"task": "embed", "input": {"text": text or f"quota {uuid.uuid4().hex}"}}


def _error_code(resp: httpx.Response) -> str:
    code: str = resp.json()["error"]["code"]
    return code


def test_submissions_over_the_per_minute_limit_get_429_and_other_tenants_do_not(
    rate_client: httpx.Client, client: httpx.Client, stack: Stack
) -> None:
    limit = QUOTA_TENANTS["quota-rate"]["submissions_per_minute"]
    replayed = {"Idempotency-Key": f"quota-{uuid.uuid4().hex}"}
    body = _embed()
    first = submit(rate_client, stack, body, headers=replayed)
    assert first.status_code == 202, first.text
    assert first.headers["X-RateLimit-Limit"] == str(limit)
    assert first.headers["X-RateLimit-Remaining"] == str(limit - 1)
    # A replay is the same job, not another submission: it is not charged.
    again = submit(rate_client, stack, body, headers=replayed)
    assert again.json()["id"] == first.json()["id"]
    assert "X-RateLimit-Remaining" not in again.headers
    for _ in range(limit - 1):
        assert submit(rate_client, stack, _embed()).status_code == 202

    over = submit(rate_client, stack, _embed())

    assert over.status_code == 429, over.text
    assert _error_code(over) == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 120
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert int(over.headers["X-RateLimit-Reset"]) >= int(over.headers["Retry-After"])
    # An upload over the limit is refused before it is read: a file no task takes would
    # otherwise get 415, after being stored.
    upload = rate_client.post(
        f"{stack.url('intake')}/v1/jobs",
        data={"task": "embed"},
        files={"file": ("note.bin", b"\x00" * 1024, "application/octet-stream")},
    )
    assert upload.status_code == 429, upload.text
    assert _error_code(upload) == "rate_limited"
    # At the limit, a replay still answers with the job it made.
    assert submit(rate_client, stack, body, headers=replayed).json()["id"] == first.json()["id"]
    # Another tenant's allowance is its own.
    assert submit(client, stack, _embed()).status_code == 202


def test_parallel_submissions_never_exceed_the_limit(stack: Stack) -> None:
    """Twenty at once, through intake's concurrent requests racing on one ledger."""
    limit = QUOTA_TENANTS["quota-burst"]["submissions_per_minute"]
    with _client("quota-burst") as burst, ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: submit(burst, stack, _embed()), range(20)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [202] * limit + [429] * (20 - limit), [r.text for r in answers]
        assert {_error_code(r) for r in answers if r.status_code == 429} == {"rate_limited"}
        accepted = [r.json()["status_url"] for r in answers if r.status_code == 202]
        for url in accepted:
            assert wait_done(burst, url)["status"] == "succeeded"


def test_a_full_queue_gets_429_until_jobs_start(stack: Stack) -> None:
    """Slow model calls fill the worker; then jobs wait, and past the tenant's cap on waiting
    jobs submits are refused, until the worker takes them on."""
    assert stack.model_double is not None
    model = stack.model_double.double
    refused_key = {"Idempotency-Key": f"quota-{uuid.uuid4().hex}"}
    accepted: list[str] = []
    with _client("quota-queue") as queue:
        model.delay_seconds = 2.0
        try:
            for _ in range(60):
                resp = submit(queue, stack, _embed(), headers=refused_key)
                if resp.status_code != 202:
                    break
                accepted.append(resp.json()["status_url"])
                refused_key = {"Idempotency-Key": f"quota-{uuid.uuid4().hex}"}
        finally:
            model.delay_seconds = 0.0
        assert resp.status_code == 429, resp.text
        assert _error_code(resp) == "too_many_queued_jobs"
        assert int(resp.headers["Retry-After"]) >= 1
        assert len(accepted) >= QUOTA_TENANTS["quota-queue"]["queued_jobs"]

        for url in accepted:
            assert wait_done(queue, url, timeout=120)["status"] == "succeeded"
        # Room again; and the refused request's Idempotency-Key was never kept, so it may
        # now name a different request.
        deadline = time.monotonic() + 10
        while (later := submit(queue, stack, _embed(), headers=refused_key)).status_code == 429:
            assert time.monotonic() < deadline, later.text  # the last events still on the way
            time.sleep(0.2)
        assert later.status_code == 202, later.text
        assert wait_done(queue, later.json()["status_url"])["status"] == "succeeded"


def test_a_waiting_slot_left_by_a_crash_heals_itself(stack: Stack) -> None:
    """A ledger entry whose job was never stored (intake died between the charge and the
    store) does not hold the tenant's only slot: at the limit it is checked and dropped."""
    lost = uuid.uuid4().hex
    ledger = {"minute": 0, "current": 0, "previous": 0, "queued": {lost: int(time.time()) - 60}}
    with _client("quota-heal") as heal:
        store_state(heal, stack, "quota:quota-heal", json.dumps(ledger))

        resp = submit(heal, stack, _embed())

        assert resp.status_code == 202, resp.text
        assert wait_done(heal, resp.json()["status_url"])["status"] == "succeeded"
