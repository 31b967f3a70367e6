"""TEST DOUBLE: an OpenAI-compatible model backend that fails on cue, for retry tests.

Not a model. It forwards every request to a real OpenAI-compatible server (in the tests, the
built-in local model), so answers stay the real model's, unless the request's input text
carries a cue. A cue reads `[fail:<fault>:<times>]`:

- `<fault>` an HTTP status (`500`, `503`, ...), answered with an OpenAI-shaped error body so
  the openai SDK raises its usual typed exception; or the name of an entry in `FAULTS`;
- `<times>` how many requests carrying that exact input text get the fault (the first
  N), or `always`.

So `"Great! [fail:500:2] 7f3a"` is answered 500 twice, then by the real model.

To add a fault (a 429 with Retry-After, a slow answer, invalid JSON), add a function to
`FAULTS`: it gets the matched `Cue` and the request and returns the response to send.

For the chaos tests (tests/chaos) it also counts the requests that reach it per input text
(`calls`), so "model calls per job" is measured at the model's door, not reported by the
worker it is checking; `delay_seconds` slows every forwarded answer, so a kill lands while
calls are in flight; and `Running.restart` serves the same double (same counters) again on
the same port after `stop`, so "the model is down" is a refused connection, as it would be.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.ports import free_port

log = logging.getLogger(__name__)

CUE = re.compile(r"\[fail:(?P<fault>[A-Za-z0-9_-]+):(?P<times>\d+|always)\]")
# Request headers passed on to the real backend (hop-by-hop ones must not be).
_FORWARDED = ("content-type", "authorization", "accept")


@dataclass(frozen=True)
class Cue:
    fault: str
    times: int | None  # None: always
    text: str  # the exact input text that carried the cue; faults are counted per text


Fault = Callable[[Cue, Request], Awaitable[Response]]


def error_response(status: int, message: str) -> Response:
    """An error in the OpenAI API's shape."""
    body = {"error": {"message": message, "type": "server_error", "code": str(status)}}
    return JSONResponse(body, status_code=status)


# Named faults. A fault that is a number is an HTTP status and needs no entry here.
FAULTS: dict[str, Fault] = {}


def input_texts(body: Any) -> list[str]:
    """The texts a request asks about: embeddings' `input`, chat messages' `content`."""
    if not isinstance(body, dict):
        return []
    texts: list[Any] = []
    match body.get("input"):
        case str() as one:
            texts.append(one)
        case list() as many:
            texts.extend(many)
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            texts.append(message.get("content"))
    return [t for t in texts if isinstance(t, str)]


def find_cue(body: Any) -> Cue | None:
    for text in input_texts(body):
        if match := CUE.search(text):
            times = match["times"]
            return Cue(match["fault"], None if times == "always" else int(times), text)
    return None


class FlakyModel:
    """The proxy's state: what each cued text has been answered so far."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._seen: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._calls: Counter[str] = Counter()
        self.delay_seconds = 0.0  # added before every forwarded answer (chaos tests)
        self._lock = threading.Lock()  # the tests read the counters from another thread
        self.app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])],
            lifespan=self._lifespan,
        )
        self._client: httpx.AsyncClient | None = None

    def faults_served(self, text: str) -> int:
        """How many requests carrying exactly `text` got their fault."""
        with self._lock:
            return self._faults[text]

    def calls(self, text: str) -> int:
        """How many requests carried exactly `text` as an input, faulted or forwarded."""
        with self._lock:
            return self._calls[text]

    @asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        # Made inside the server's event loop, which is where it is used and closed.
        async with httpx.AsyncClient(timeout=120) as client:
            self._client = client
            yield

    def _due(self, cue: Cue) -> bool:
        with self._lock:
            self._seen[cue.text] += 1
            due = cue.times is None or self._seen[cue.text] <= cue.times
            if due:
                self._faults[cue.text] += 1
            return due

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self._calls.update(input_texts(body))
        cue = find_cue(body)
        if cue is not None and self._due(cue):
            log.info("flaky model: fault %s for %r", cue.fault, cue.text)
            if cue.fault.isdigit():
                return error_response(int(cue.fault), f"injected fault {cue.fault}")
            return await FAULTS[cue.fault](cue, request)
        return await self._forward(request, raw)

    async def _forward(self, request: Request, raw: bytes) -> Response:
        assert self._client is not None
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
        path = request.path_params["path"]
        # The upstream base URL ends in /v1, as the openai SDK's does; so does our own path.
        url = f"{self.upstream}/{path.removeprefix('v1/')}"
        upstream = self._client.build_request(request.method, url, content=raw, headers=headers)
        resp = await self._client.send(upstream, stream=True)
        media_type = resp.headers.get("content-type")
        if (media_type or "").startswith("text/event-stream"):
            # A streamed answer (`stream: true`) is passed on chunk by chunk, as it comes.
            async def chunks() -> AsyncIterator[bytes]:
                try:
                    async for chunk in resp.aiter_raw():
                        yield chunk
                finally:
                    await resp.aclose()

            return StreamingResponse(chunks(), resp.status_code, media_type=media_type)
        try:
            content = await resp.aread()
        finally:
            await resp.aclose()
        return Response(content, status_code=resp.status_code, media_type=media_type)


@dataclass
class Running:
    double: FlakyModel
    url: str  # the OpenAI base URL to give the worker (ends in /v1)
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def restart(self, timeout: float = 30) -> None:
        """Serve the same double again on the same port, after `stop`."""
        port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self.server, self.thread = _serve(self.double, port, timeout)


def start(upstream: str, timeout: float = 30) -> Running:
    """Serve the double on a free loopback port, in a thread of this process."""
    double = FlakyModel(upstream)
    port = free_port()
    server, thread = _serve(double, port, timeout)
    return Running(double, f"http://127.0.0.1:{port}/v1", server, thread)


def _serve(
    double: FlakyModel, port: int, timeout: float
) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(double.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="flaky-model", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the flaky model double did not start")
        time.sleep(0.05)
    return server, thread
