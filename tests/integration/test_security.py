"""Security on the running stack: API keys, tenants that cannot see each other's jobs, and
sidecars locked down (tokens and topic scopes enforced by real daprd)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jobrelay.contract import JobInput, JobRecord
from tests.integration.helpers import SENTIMENT, classify, store_state, submit, wait_done
from tests.integration.stack import APP_API_TOKEN, DAPR_API_TOKEN, Stack, client_headers


@pytest.fixture
def tenant_a() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers=client_headers("tenant-a")) as c:
        yield c


@pytest.fixture
def tenant_b() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers=client_headers("tenant-b")) as c:
        yield c


def _store_queued(client: httpx.Client, stack: Stack, tenant: str) -> JobRecord:
    """A queued job of `tenant`, stored but never published, so it stays cancellable."""
    record = JobRecord.new(
        "classify", JobInput(text="never published"), {"labels": SENTIMENT}, {}, tenant=tenant
    )
    store_state(client, stack, f"job:{record.id}", record.model_dump_json())
    return record


@pytest.mark.parametrize("app", ["intake", "status"])
def test_a_request_without_a_valid_key_is_401(stack: Stack, app: str) -> None:
    path = "/v1/jobs" if app == "intake" else f"/v1/jobs/{'0' * 32}"
    method = "POST" if app == "intake" else "GET"
    for headers in ({}, {"Authorization": "Bearer jr_not-a-key"}, {"Authorization": "Basic x"}):
        resp = httpx.request(
            method, f"{stack.url(app)}{path}", json=classify("hi"), headers=headers
        )
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_health_stays_open_without_a_key(stack: Stack) -> None:
    assert httpx.get(f"{stack.url('status')}/healthz").status_code == 200


def test_a_job_belongs_to_the_tenant_whose_key_submitted_it(
    tenant_a: httpx.Client, tenant_b: httpx.Client, stack: Stack
) -> None:
    job = submit(tenant_a, stack, classify("I love it.")).json()
    assert wait_done(tenant_a, job["status_url"])["status"] == "succeeded"
    assert tenant_b.get(job["status_url"]).status_code == 404


def test_tenant_b_cannot_read_stream_cancel_or_list_a_job_of_tenant_a(
    tenant_a: httpx.Client, tenant_b: httpx.Client, stack: Stack
) -> None:
    record = _store_queued(tenant_a, stack, "tenant-a")
    job_url = f"{stack.url('status')}/v1/jobs/{record.id}"

    answers = {
        "status": tenant_b.get(job_url),
        "results": tenant_b.get(f"{stack.url('status')}/api/results/{record.id}"),
        "events": tenant_b.get(f"{job_url}/events"),
        "cancel": tenant_b.delete(job_url),
    }
    for what, resp in answers.items():
        # Exactly the answer for an id that does not exist: no way to tell the two apart.
        assert resp.status_code == 404, (what, resp.text)
        assert resp.json()["error"] == {
            "code": "job_not_found",
            "message": f"no job with id {record.id}",
        }, what
    # The admin routes are for operators: tenant B gets no further than that.
    listed = tenant_b.get(f"{stack.url('intake')}/admin/dead-letters?tenant=tenant-a")
    assert listed.status_code == 403
    replay = tenant_b.post(
        f"{stack.url('intake')}/admin/dead-letters/{record.id}/replay?tenant=tenant-a"
    )
    assert replay.status_code == 403
    # Tenant A's job is untouched by all of that, and A can still cancel it.
    assert tenant_a.get(job_url).json()["status"] == "queued"
    assert tenant_a.delete(job_url).json()["status"] == "cancelled"


def test_idempotency_keys_do_not_cross_tenants(
    tenant_a: httpx.Client, tenant_b: httpx.Client, stack: Stack
) -> None:
    headers = {"Idempotency-Key": "shared-key-between-tenants"}
    a = submit(tenant_a, stack, classify("same request"), headers=headers).json()
    b = submit(tenant_b, stack, classify("same request"), headers=headers).json()
    assert a["id"] != b["id"]


def test_sidecar_routes_refuse_callers_without_the_app_token(stack: Stack) -> None:
    for app in ("intake", "worker", "status"):
        refused = httpx.get(f"{stack.url(app)}/dapr/subscribe")
        assert refused.status_code == 401, app
        forged = httpx.post(f"{stack.url(app)}/events/pubsub/jobs", json={})
        assert forged.status_code == 401, app
        allowed = httpx.get(
            f"{stack.url(app)}/dapr/subscribe", headers={"dapr-api-token": APP_API_TOKEN}
        )
        assert allowed.status_code == 200, app


def test_a_sidecar_refuses_callers_without_the_dapr_api_token(stack: Stack) -> None:
    resp = httpx.get(f"{stack.sidecar('intake')}/v1.0/state/statestore/job:x")
    assert resp.status_code == 401, resp.text


@pytest.mark.parametrize(
    ("app", "topic"),
    [
        ("status", "jobs"),
        ("model", "jobs"),
        ("intake", "jobs-dead"),
        ("status", "jobs-dead"),
        # A lane (jobrelay.lanes) is intake's to publish, like `jobs`.
        ("status", "jobs-high-0"),
        ("worker", "jobs-normal-1"),
    ],
)
def test_daprd_refuses_a_publish_outside_the_topic_scopes(
    stack: Stack, app: str, topic: str
) -> None:
    resp = httpx.post(
        f"{stack.sidecar(app)}/v1.0/publish/pubsub/{topic}",
        json={"job_id": "0" * 32, "task": "classify"},
        headers={"dapr-api-token": DAPR_API_TOKEN},
    )
    # The model's sidecar has no pubsub component at all (component scopes); the others
    # have it, but not the right to publish this topic (publishingScopes).
    assert resp.status_code in (403, 404), resp.text
    code = resp.json()["errorCode"]
    assert code == ("ERR_PUBSUB_NOT_FOUND" if app == "model" else "ERR_PUBSUB_FORBIDDEN"), resp.text


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://[::1]:9/hook",  # loopback, but outside the allowed 127.0.0.0/8
        "http://[::ffff:172.16.0.1]/hook",
        "http://0.0.0.0:6379/",
    ],
)
def test_a_webhook_into_a_private_network_is_refused_at_submit(
    client: httpx.Client, stack: Stack, url: str
) -> None:
    # Every URL here is refused before any connection: their addresses are literals.
    resp = submit(client, stack, classify("hi", webhook={"url": url}))
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "webhook_url_refused"


def test_an_upload_whose_bytes_are_not_its_declared_type_is_415(
    client: httpx.Client, stack: Stack
) -> None:
    # Declared a PNG, but its bytes are a script: the header does not decide, the bytes do.
    fake = ("photo.png", b"#!/bin/sh\nrm -rf /\n", "image/png")
    resp = client.post(
        f"{stack.url('intake')}/v1/jobs", data={"task": "describe_image"}, files={"file": fake}
    )
    assert resp.status_code == 415, resp.text
    assert resp.json()["error"]["code"] == "content_type_mismatch"


def test_a_text_longer_than_its_task_takes_is_413(client: httpx.Client, stack: Stack) -> None:
    resp = submit(client, stack, classify("x" * 20_001))
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "input_too_long"
