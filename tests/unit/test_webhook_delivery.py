"""Webhook deliveries (apps/status/webhooks.py) over real sockets to real HTTP receivers on
loopback: DNS rebinding, what a failure records, the signing secrets' store being down, and
one tenant's dead receivers not holding up another's (issue 17, High 3, Medium 6, Low).

The job store is the real one over an in-memory fake of the Dapr client (Jobs below); the
resolver is the test's own (socket.getaddrinfo replaced), since rebinding is about what a
name answers from one lookup to the next. This workplace sends no traffic off the machine,
so a second loopback address, 127.0.0.2, admitted by JOBRELAY_WEBHOOK_ALLOWED_NETWORKS, plays
the public receiver, and 127.0.0.1, which is not admitted, the internal service behind it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import httpx
import pytest
from dapr.clients.exceptions import DaprInternalError
from standardwebhooks import Webhook

from apps.status.settings import StatusSettings
from apps.status.signing import SigningSecrets
from apps.status.webhooks import NO_ANSWER, WebhookSender
from jobrelay import keys
from jobrelay.auth import AuthSettings
from jobrelay.contract import JobInput, JobRecord, JobStatus, WebhookSpec
from jobrelay.deltas import DeltaLog
from jobrelay.state import State
from jobrelay.store import JobStore
from jobrelay.webhook_targets import get_target_settings
from tests.doubles.memory_dapr import MemoryDapr
from tests.ports import free_port

pytestmark = pytest.mark.anyio

SECRET = "whsec_am9icmVsYXktbG9jYWwtZGV2ZWxvcG1lbnQtc2VjcmV0"  # noqa: S105 (the public dev secret)


class Jobs(JobStore):
    """The real job store, over an in-memory FAKE of the Dapr client (which keeps Dapr's
    ETag rules), with a synchronous way in and out for the tests."""

    def __init__(self) -> None:
        self.dapr = MemoryDapr()
        super().__init__(State(cast(Any, self.dapr)), retention_seconds=60)

    def put(self, record: JobRecord) -> None:
        self.dapr.put(keys.job(record.id), record.model_dump_json())

    def deliveries(self, job_id: str) -> list[Any]:
        return JobRecord.model_validate(self.dapr.value(keys.job(job_id))).webhook_deliveries


@dataclass
class Receiver:
    url: str
    hosts: list[str] = field(default_factory=list)  # the Host header of each request
    # Each request's headers and body, for the signature checks.
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def receiver(address: str, port: int) -> Iterator[Receiver]:
    """A real HTTP server on `address`:`port` that answers 200 and records each request."""
    got = Receiver(f"http://{address}:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            got.hosts.append(self.headers.get("host", ""))
            got.requests.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def black_hole() -> Iterator[str]:
    """A port that accepts connections and never answers: a receiver gone silent."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()


def settings(**changes: Any) -> StatusSettings:
    return StatusSettings.model_validate(
        {"port": 1, "webhook_secret": SECRET, "webhook_timeout_seconds": 1, **changes}
    )


def allow(monkeypatch: pytest.MonkeyPatch, networks: str) -> Iterator[None]:
    monkeypatch.setenv("JOBRELAY_WEBHOOK_ALLOWED_NETWORKS", networks)
    get_target_settings.cache_clear()
    yield
    get_target_settings.cache_clear()


@pytest.fixture
def public_stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only 127.0.0.2 (the stand-in public receiver) is admitted."""
    yield from allow(monkeypatch, '["127.0.0.2/32"]')


@pytest.fixture(autouse=True)
def loopback(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every other test's receivers are on 127.0.0.1, admitted as the local run does."""
    if "public_stand_in" in request.fixturenames:
        yield
        return
    yield from allow(monkeypatch, '["127.0.0.0/8"]')


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


def sender(
    store: Jobs, http: httpx.AsyncClient, secrets: SigningSecrets | None = None, **changes: Any
) -> WebhookSender:
    status = settings(**changes)
    secrets = secrets or SigningSecrets(cast(Any, None), status, AuthSettings())
    return WebhookSender(store, status, http, secrets, DeltaLog(State(cast(Any, store.dapr))))


def finished_job(store: Jobs, url: str, tenant: str = "default") -> JobRecord:
    record = JobRecord.new(
        "embed", JobInput(text="hi"), {}, {}, webhook=WebhookSpec(url=url), tenant=tenant
    ).moved_to(JobStatus.FAILED)
    store.put(record)
    return record


async def until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_name_that_rebinds_to_loopback_after_the_check_never_reaches_it(
    public_stand_in: None, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    answers = iter(["127.0.0.2"] + ["127.0.0.1"] * 20)  # public first, loopback next
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio asks with bytes
        if name != "rebind.test":
            return real(host, *args, **kwargs)
        asked.append(name)
        return real(next(answers), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    store = Jobs()
    with receiver("127.0.0.2", port) as public, receiver("127.0.0.1", port) as internal:
        record = finished_job(store, f"http://rebind.test:{port}/hook")
        await sender(store, http).on_change(record)
        await until(lambda: store.deliveries(record.id), 10)
    assert internal.hosts == []
    assert public.hosts == [f"rebind.test:{port}"]  # the URL's host, at the checked address
    assert store.deliveries(record.id)[0].delivered
    assert asked == ["rebind.test"]  # one lookup, whose answer was checked and then used


async def test_a_failed_connection_is_recorded_without_saying_why(
    http: httpx.AsyncClient,
) -> None:
    store = Jobs()
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: refused at once
    with black_hole() as silent:
        refused, timed_out = finished_job(store, closed), finished_job(store, silent)
        webhooks = sender(store, http, webhook_attempts=1)
        await webhooks.on_change(refused)
        await webhooks.on_change(timed_out)
        await until(lambda: store.deliveries(refused.id) and store.deliveries(timed_out.id), 10)
    errors = {store.deliveries(j.id)[0].error for j in (refused, timed_out)}
    assert errors == {NO_ANSWER}  # one message for both: no map of ports for a client


class FlakySecretStore:
    """FAKE Dapr client whose secret store is down for its first `down` reads."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.reads = 0

    async def get_secret(self, store: str, key: str) -> Any:
        self.reads += 1
        if self.reads <= self.down:
            raise DaprInternalError("secret store unreachable")
        return type("Secret", (), {"secret": {key: f'{{"default": "{SECRET}"}}'}})()


async def test_signing_secrets_that_cannot_be_read_are_retried_not_dropped(
    http: httpx.AsyncClient,
) -> None:
    store = Jobs()
    dapr = FlakySecretStore(down=1)
    status = settings(webhook_secrets_refresh_seconds=0.01)
    secrets = SigningSecrets(cast(Any, dapr), status, AuthSettings(secret_store="secrets"))  # noqa: S106 (a name)
    with receiver("127.0.0.1", free_port()) as hook:
        record = finished_job(store, hook.url)
        await sender(store, http, secrets, webhook_secrets_refresh_seconds=0.01).on_change(record)
        await until(lambda: any(d.delivered for d in store.deliveries(record.id)), 15)
    first, last = store.deliveries(record.id)[0], store.deliveries(record.id)[-1]
    assert "retried" in (first.error or "")
    assert last.delivered
    assert len(hook.hosts) == 1


async def test_one_tenants_silent_receivers_do_not_hold_up_anothers_webhook(
    http: httpx.AsyncClient,
) -> None:
    store = Jobs()
    webhooks = sender(store, http, webhook_timeout_seconds=10)
    with black_hole() as silent, receiver("127.0.0.1", free_port()) as hook:
        for _ in range(50):
            await webhooks.on_change(finished_job(store, silent, tenant="noisy"))
        record = finished_job(store, hook.url, tenant="quiet")
        started = time.monotonic()
        await webhooks.on_change(record)
        await until(lambda: hook.hosts, 5)
        assert time.monotonic() - started < 2
        assert webhooks.lanes.waiting("noisy") == 50
        await webhooks.close()


async def test_an_output_event_carries_the_text_so_far_signed_and_is_not_recorded(
    http: httpx.AsyncClient,
) -> None:
    store = Jobs()
    deltas = DeltaLog(State(cast(Any, store.dapr)))
    with receiver("127.0.0.1", free_port()) as hook:
        spec = WebhookSpec.model_validate({"url": hook.url, "events": ["output"]})
        record = JobRecord.new("chat", JobInput(text="hi"), {}, {}, webhook=spec)
        record = record.moved_to(JobStatus.RUNNING)
        store.put(record)
        for n, text in enumerate(["Hel", "lo", " there"], start=1):
            await deltas.append(record, n, text, 60)
        await sender(store, http).on_output(record, 2)
        await until(lambda: hook.requests, 10)
    headers, body = hook.requests[0]
    assert headers["webhook-id"] == f"{record.id}-{record.seq}.2"
    payload = Webhook(SECRET).verify(body, headers)  # the standardwebhooks package
    assert payload["streamed_text"] == "Hello"  # chunks 1 and 2: not yet the third
    assert payload["status"] == "running"
    assert store.deliveries(record.id) == []  # an output costs no record write
