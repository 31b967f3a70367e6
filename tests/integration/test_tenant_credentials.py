"""Per-tenant credentials on the running stack: OIDC/JWT bearer tokens from the session's
identity provider (tests/identity_provider.py) beside API keys, and webhook signing secrets
that differ per tenant, read through the Dapr secret store by real daprd."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.integration.helpers import classify, submit, wait_done, webhook_receiver
from tests.integration.stack import WEBHOOK_SECRETS, Stack, client_headers


def _jwt_client(stack: Stack, tenant: str, **claims: Any) -> httpx.Client:
    assert stack.idp is not None
    token = stack.idp.token(tenant, **claims)
    return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def tenant_a(stack: Stack) -> Iterator[httpx.Client]:
    with _jwt_client(stack, "tenant-a") as c:
        yield c


def test_a_jwt_of_tenant_a_submits_and_reads_its_jobs_and_not_tenant_bs(
    tenant_a: httpx.Client, stack: Stack
) -> None:
    own = submit(tenant_a, stack, classify("Submitted with a token."))
    assert own.status_code == 202, own.text
    assert wait_done(tenant_a, own.json()["status_url"])["status"] == "succeeded"

    # One tenant, two kinds of credential: A's API key and A's token see the same jobs.
    with httpx.Client(timeout=30, headers=client_headers("tenant-a")) as by_key:
        keyed = submit(by_key, stack, classify("Submitted with a key.")).json()
        assert by_key.get(own.json()["status_url"]).status_code == 200
    assert tenant_a.get(keyed["status_url"]).status_code in (200, 202)

    with httpx.Client(timeout=30, headers=client_headers("tenant-b")) as tenant_b:
        theirs = submit(tenant_b, stack, classify("Tenant B's job.")).json()
    answer = tenant_a.get(theirs["status_url"])
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "job_not_found"


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"lifetime": -600}, "token_expired"),
        ({"aud": "another-api"}, "invalid_token"),
        ({"tenant": None}, "invalid_token"),
    ],
)
@pytest.mark.parametrize("app", ["intake", "status"])
def test_a_bad_jwt_is_401_on_both_apps(
    stack: Stack, app: str, claims: dict[str, Any], code: str
) -> None:
    claims = dict(claims)  # parametrize shares the dict between runs: never mutate it
    tenant = claims.pop("tenant", "tenant-a")
    assert stack.idp is not None
    token = stack.idp.token(tenant, **claims)
    method, path = ("POST", "/v1/jobs") if app == "intake" else ("GET", f"/v1/jobs/{'0' * 32}")
    resp = httpx.request(
        method,
        f"{stack.url(app)}{path}",
        json=classify("hi"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == code


def test_a_tenants_webhook_verifies_with_its_own_secret_only(stack: Stack) -> None:
    with httpx.Client(timeout=30, headers=client_headers("tenant-a")) as a:
        secret = a.get(f"{stack.url('status')}/v1/webhooks/secret").json()["key"]
        with webhook_receiver() as receiver:
            submit(a, stack, classify("Signed for tenant A.", webhook={"url": receiver.url}))
            delivery = receiver.wait_for(1)[0]

    assert secret == WEBHOOK_SECRETS["tenant-a"]
    assert Webhook(secret).verify(delivery.body, delivery.headers)["status"] == "succeeded"
    for other in ("tenant-b", "default"):
        with pytest.raises(WebhookVerificationError):
            Webhook(WEBHOOK_SECRETS[other]).verify(delivery.body, delivery.headers)


def test_the_secret_endpoint_answers_each_tenant_its_own_secret(
    tenant_a: httpx.Client, stack: Stack
) -> None:
    url = f"{stack.url('status')}/v1/webhooks/secret"
    for tenant in ("tenant-a", "tenant-b"):
        resp = httpx.get(url, headers=client_headers(tenant))
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"key": WEBHOOK_SECRETS[tenant]}
        assert resp.headers["Cache-Control"] == "no-store"
    assert tenant_a.get(url).json() == {"key": WEBHOOK_SECRETS["tenant-a"]}  # by JWT too

    unauthenticated = httpx.get(url)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "unauthorized"


def test_a_tenant_without_a_secret_gets_no_webhook_and_is_told_why(stack: Stack) -> None:
    with (
        httpx.Client(timeout=30, headers=client_headers("tenant-c")) as c,
        webhook_receiver() as receiver,
    ):
        job = submit(c, stack, classify("No secret.", webhook={"url": receiver.url})).json()
        assert wait_done(c, job["status_url"])["status"] == "succeeded"
        deliveries = _deliveries(c, job["status_url"])
        assert receiver.received == []  # never sent unsigned, nor signed with another's
    assert not deliveries[0]["delivered"]
    assert "no webhook signing secret for tenant 'tenant-c'" in deliveries[0]["error"]
    missing = httpx.get(
        f"{stack.url('status')}/v1/webhooks/secret", headers=client_headers("tenant-c")
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "webhook_secret_not_found"


def _deliveries(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    """The job's recorded deliveries, once there (recording follows the job's last event)."""
    deadline = time.monotonic() + 10
    while True:
        found: list[dict[str, Any]] = client.get(url).json()["webhook_deliveries"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
