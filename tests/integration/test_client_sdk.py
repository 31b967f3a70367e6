"""The Python SDK (jobrelay.client) against the running stack: waits over the event stream
and over polling, map's concurrency bound, errors with their codes, and webhook signatures
checked against what the status app really sends."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from pydantic import SecretStr

from jobrelay.client import (
    ApiError,
    AsyncClient,
    Client,
    ClientSettings,
    InvalidSignature,
    JobFailed,
    JobStatus,
    Submission,
    Upload,
    verify_webhook,
)
from jobrelay.contract import WebhookSpec
from tests.integration.helpers import SENTIMENT, webhook_receiver
from tests.integration.stack import API_KEYS, WEBHOOK_SECRET, Stack


def settings(stack: Stack) -> ClientSettings:
    return ClientSettings(
        intake_url=stack.url("intake"),
        status_url=stack.url("status"),
        api_key=SecretStr(API_KEYS["default"]),
    )


def review(text: str) -> Submission:
    return Submission("classify", text=text, params={"labels": SENTIMENT})


class Recorder:
    """Every request an httpx client sends, as `METHOD path`."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        self.sent.append(f"{request.method} {request.url.path}")


class RefuseEventStreams(httpx.BaseTransport):
    """TEST DOUBLE in front of the real stack: answers 502 for event streams (as a proxy
    that cannot pass streams would) and passes every other request to the real servers."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(502, text="Bad Gateway")
        return self.real.handle_request(request)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(stack: Stack, recorder: Recorder) -> Iterator[Client]:
    with Client(settings(stack), http=httpx.Client(event_hooks={"request": [recorder]})) as c:
        yield c


def test_wait_follows_the_event_stream(client: Client, recorder: Recorder) -> None:
    job = client.submit(review("I love this product, it works perfectly!"))
    done = client.wait(job.id, timeout=30)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result is not None
    assert done.result.output["label"] == "positive"
    # One stream and no polling: the stream delivered the final state.
    assert recorder.sent == ["POST /v1/jobs", f"GET /v1/jobs/{job.id}/events"]


def test_wait_polls_when_the_stream_is_unavailable(stack: Stack, recorder: Recorder) -> None:
    http = httpx.Client(transport=RefuseEventStreams(), event_hooks={"request": [recorder]})
    with Client(settings(stack), http=http) as client:
        job = client.submit(review("Terrible support, I want a refund."))
        done = client.wait(job.id, timeout=30)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result is not None
    assert done.result.output["label"] == "negative"
    assert recorder.sent[1] == f"GET /v1/jobs/{job.id}/events"
    assert recorder.sent[-1] == f"GET /v1/jobs/{job.id}"


def test_async_wait_follows_the_event_stream(stack: Stack) -> None:
    async def run() -> JobStatus:
        async with AsyncClient(settings(stack)) as client:
            job = await client.submit(Submission("embed", text="hello"))
            async with asyncio.timeout(30):
                return (await client.wait(job.id)).status

    assert asyncio.run(run()) is JobStatus.SUCCEEDED


def test_map_keeps_at_most_the_bound_in_flight(stack: Stack) -> None:
    bound, count = 3, 12
    in_flight: list[int] = []
    finished = 0

    def on_request(request: httpx.Request) -> None:
        if request.method == "POST":
            submitted = len(in_flight) + 1
            in_flight.append(submitted - finished)

    http = httpx.Client(event_hooks={"request": [on_request]})
    inputs = [review(f"Great value, would buy again ({n})") for n in range(count)]
    indexes = []
    with Client(settings(stack), http=http) as client:
        for outcome in client.map(inputs, concurrency=bound, timeout=30):
            finished += 1
            assert outcome.succeeded, outcome
            indexes.append(outcome.index)
    assert sorted(indexes) == list(range(count))
    assert max(in_flight) == bound, in_flight


def test_async_map_yields_every_outcome(stack: Stack) -> None:
    async def run() -> list[int]:
        async with AsyncClient(settings(stack)) as client:
            inputs = [Submission("embed", text=f"sentence {n}") for n in range(6)]
            async with asyncio.timeout(60):
                return [o.index async for o in client.map(inputs, concurrency=2) if o.succeeded]

    assert sorted(asyncio.run(run())) == list(range(6))


def test_errors_carry_their_code(client: Client) -> None:
    with pytest.raises(ApiError) as refused:
        client.submit(Submission("no_such_task", text="hi"))
    assert (refused.value.status, refused.value.code) == (400, "unknown_task")
    with pytest.raises(ApiError) as missing:
        client.get("0" * 32)
    assert missing.value.code == "job_not_found"


def test_failed_job_raises_with_its_error_code(client: Client) -> None:
    # The built-in model cannot see images: the job fails, and says so with its code.
    image = Upload(_one_pixel_png(), "pixel.png", "image/png")
    with pytest.raises(JobFailed) as failed:
        client.run(Submission("describe_image", file=image), timeout=30)
    assert failed.value.code == "capability_unavailable"
    assert failed.value.job.status is JobStatus.FAILED


def test_verify_webhook_accepts_the_servers_signature(client: Client) -> None:
    with webhook_receiver() as receiver:
        job = client.submit(replace(review("Fine."), webhook=WebhookSpec(url=receiver.url)))
        delivery = receiver.wait_for(1)[0]
    verified = verify_webhook(WEBHOOK_SECRET, delivery.body, delivery.headers)
    assert verified.id == job.id
    assert verified.status.terminal
    with pytest.raises(InvalidSignature):
        verify_webhook(WEBHOOK_SECRET, delivery.body.replace(b"Fine", b"Fake"), delivery.headers)
    with pytest.raises(InvalidSignature):
        verify_webhook(
            "whsec_" + "c2VjcmV0LW5vdC10aGUtc2VydmVycw==", delivery.body, delivery.headers
        )


def _one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
