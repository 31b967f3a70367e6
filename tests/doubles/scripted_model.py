"""TEST DOUBLE: an OpenAI-compatible server that answers from a script, not a model.

Each model id has a queue of scripted replies (a status, a body, headers, a delay); a
request takes the next one, and once the queue is empty it gets a plain success: for
embeddings, a fixed vector derived from the text's hash; for chat, the scripted default
content. It records every request (model, time, what it answered) and the most requests it
ever held at once, so tests can check retries, Retry-After, fallback order and concurrency
limits over real HTTP, through the real openai SDK.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.ports import free_port


@dataclass(frozen=True)
class Reply:
    status: int = 200
    content: str | None = None  # chat: the assistant's text
    error_code: str | None = None  # OpenAI error `code`, e.g. context_length_exceeded
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering

    @classmethod
    def rate_limited(cls, retry_after: float) -> Reply:
        return cls(429, headers={"retry-after": f"{retry_after:g}"})


@dataclass(frozen=True)
class Seen:
    model: str
    path: str
    at: float  # time.monotonic()
    status: int
    body: dict[str, Any]


class ScriptedModel:
    def __init__(self) -> None:
        self.url = ""
        self.scripts: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self.default_delay = 0.0
        self.default_content = '{"ok": true}'
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def script(self, model: str, *replies: Reply) -> None:
        self.scripts[model].extend(replies)

    def calls(self, model: str | None = None) -> list[Seen]:
        return [s for s in self.seen if model is None or s.model == model]

    async def _answer(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model", ""))
        reply = self.scripts[model].popleft() if self.scripts[model] else None
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(reply.delay if reply else self.default_delay)
        finally:
            self.in_flight -= 1
        status = reply.status if reply else 200
        self.seen.append(Seen(model, request.url.path, time.monotonic(), status, body))
        if status != 200:
            assert reply is not None
            error = {"message": f"scripted {status}", "type": "scripted", "code": reply.error_code}
            return JSONResponse({"error": error}, status_code=status, headers=reply.headers)
        if request.url.path.endswith("/embeddings"):
            return JSONResponse(_embeddings(model, body))
        content = reply.content if reply and reply.content is not None else self.default_content
        return JSONResponse(_completion(model, content))


def _embeddings(model: str, body: dict[str, Any]) -> dict[str, Any]:
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for i, text in enumerate(texts):
        digest = hashlib.sha256(str(text).encode()).digest()
        data.append(
            {"object": "embedding", "index": i, "embedding": [b / 255 - 0.5 for b in digest[:8]]}
        )
    tokens = sum(len(str(t).split()) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


@contextmanager
def scripted_model() -> Iterator[ScriptedModel]:
    double = ScriptedModel()
    app = Starlette(
        routes=[
            Route("/v1/embeddings", double._answer, methods=["POST"]),
            Route("/v1/chat/completions", double._answer, methods=["POST"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    double.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield double
    finally:
        server.should_exit = True
        thread.join(timeout=5)
