"""`stream: true` on POST /v1/chat/completions: OpenAI's server-sent chunks
(`chat.completion.chunk` events, then `data: [DONE]`), each sent as llama.cpp generates it.

llama.cpp generates in a worker thread and calls back once per token; the callback hands
each chunk to the event loop through a queue, so the answer goes out token by token, not
after the whole generation. A request llama.cpp refuses (its context is too small, say)
is refused before the stream starts, with the same status and error body as without
`stream`: the first chunk decides.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from fastapi.responses import JSONResponse, StreamingResponse

from apps.model import openai_api
from apps.model.chat import MODEL_ID, ChatError, SmolLM2

# Fields of llama.cpp's chunks that OpenAI's do not have.
_NOT_OPENAI = ("timings",)
_END = None  # what the queue carries once generation has ended


def _chunk(raw: dict[str, Any]) -> bytes:
    # llama.cpp names the GGUF's file path as the model; clients see the id they sent.
    shown = {k: v for k, v in raw.items() if k not in _NOT_OPENAI} | {"model": MODEL_ID}
    return f"data: {json.dumps(shown, separators=(',', ':'))}\n\n".encode()


async def stream(chat: SmolLM2, body: dict[str, Any]) -> StreamingResponse | JSONResponse:
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()

    def generate() -> None:
        try:

            def hand_over(chunk: dict[str, Any]) -> None:
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)

            chat.stream(body, hand_over)
        except BaseException as exc:  # told to the stream, which is where the client waits
            loop.call_soon_threadsafe(chunks.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(chunks.put_nowait, _END)

    generating = asyncio.ensure_future(to_thread.run_sync(generate))
    first = await chunks.get()
    if isinstance(first, ChatError):
        await generating
        return openai_api.openai_error(first.status, first.message, first.kind, first.code)
    if isinstance(first, BaseException):
        await generating
        raise first

    async def events() -> AsyncIterator[bytes]:
        item: dict[str, Any] | BaseException | None = first
        try:
            while item is not _END:
                if isinstance(item, BaseException):
                    # Mid-stream: the status is sent already; OpenAI's way is an error event.
                    error = {"error": {"message": str(item), "type": "server_error"}}
                    yield f"data: {json.dumps(error)}\n\n".encode()
                    return
                assert item is not None
                yield _chunk(item)
                item = await chunks.get()
            yield b"data: [DONE]\n\n"
        finally:
            await generating  # the thread ends at the cap (max_tokens) at the latest

    return StreamingResponse(events(), media_type="text/event-stream")
