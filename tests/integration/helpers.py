"""What the integration tests do as a client would: submit, poll, read event streams, and
receive webhooks on a real HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.integration.stack import Stack
from tests.ports import free_port

SENTIMENT = ["positive", "negative", "neutral"]


def classify(text: str, **extra: Any) -> dict[str, Any]:
    return {"task": "classify", "input": {"text": text}, "params": {"labels": SENTIMENT}, **extra}


def submit(
    client: httpx.Client, stack: Stack, body: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    return client.post(f"{stack.url('intake')}/v1/jobs", json=body, **kwargs)


def submit_all(
    client: httpx.Client, stack: Stack, bodies: list[dict[str, Any]], threads: int = 8
) -> list[dict[str, Any]]:
    """Submit `bodies` from `threads` threads at once; each must be accepted (202). The
    answers, in the order of `bodies`."""

    def one(body: dict[str, Any]) -> dict[str, Any]:
        answer = submit(client, stack, body)
        assert answer.status_code == 202, answer.text
        accepted: dict[str, Any] = answer.json()
        return accepted

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, bodies))


def store_state(client: httpx.Client, stack: Stack, key: str, value: str) -> None:
    """Write `value` (JSON text) under `key` through a sidecar's HTTP state API, as an app
    would through gRPC. Sent as a JSON string, not an object: on an encrypted store, daprd
    1.18's HTTP API formats a non-string value with Go's `%v` before it encrypts it."""
    resp = client.post(
        f"{stack.sidecar('status')}/v1.0/state/statestore", json=[{"key": key, "value": value}]
    )
    assert resp.status_code == 204, resp.text


def wait_done(client: httpx.Client, url: str, timeout: float = 30) -> dict[str, Any]:
    """Poll as a client should: again after Retry-After while the answer is 202."""
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(url)
        if resp.status_code == 200:
            body: dict[str, Any] = resp.json()
            return body
        assert resp.status_code == 202, resp.text
        assert time.monotonic() < deadline, f"still pending after {timeout}s: {resp.text}"
        time.sleep(float(resp.headers["Retry-After"]))


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: dict[str, Any]


def read_events(
    client: httpx.Client,
    url: str,
    headers: dict[str, str] | httpx.Headers | None = None,
    timeout: float = 30,
) -> list[SseEvent]:
    """Every event of a stream until the server ends it (a job's stream ends when terminal)."""
    events: list[SseEvent] = []
    current: dict[str, str] = {}
    with client.stream("GET", url, headers=headers or {}, timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line:
                if "data" in current:
                    events.append(
                        SseEvent(
                            current.get("id"), current.get("event"), json.loads(current["data"])
                        )
                    )
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
    return events


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    """A real HTTP server that records the webhooks it receives."""

    url: str
    received: list[Received] = field(default_factory=list)
    answer: int = 200

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} webhooks"
            time.sleep(0.05)
        return self.received


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    app = FastAPI()
    port = free_port()
    receiver = WebhookReceiver(url=f"http://127.0.0.1:{port}/hook")

    @app.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        receiver.received.append(Received(await request.body(), dict(request.headers)))
        return JSONResponse({"ok": receiver.answer == 200}, status_code=receiver.answer)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=5)
