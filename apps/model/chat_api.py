"""POST /v1/chat/completions: the local chat model, OpenAI-compatible (streamed with
`stream: true`, apps/model/chat_stream.py; no tools)."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from apps.model import chat_stream, openai_api
from apps.model.chat import MODEL_ID, ChatError
from apps.model.deps import ChatDep, SettingsDep
from apps.model.settings import ModelSettings

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: openai_api.ChatCompletionRequest, chat: ChatDep, settings: SettingsDep
) -> openai_api.ChatCompletion | JSONResponse | StreamingResponse:
    if chat is None or body.model != MODEL_ID:
        return openai_api.model_not_found(body.model, [MODEL_ID] if chat else [])
    if body.stream:
        if body.n != 1:
            return openai_api.openai_error(
                400, "stream is served for n=1 only", "invalid_request_error", "unsupported_value"
            )
        return await chat_stream.stream(chat, to_llama(body, settings))
    try:
        answer = await to_thread.run_sync(chat.complete, to_llama(body, settings))
    except ChatError as exc:
        return openai_api.openai_error(exc.status, exc.message, exc.kind, exc.code)
    # llama.cpp reports the GGUF's file path as the model; clients should see the id they sent.
    return openai_api.ChatCompletion.model_validate({**answer, "model": MODEL_ID})


def to_llama(body: openai_api.ChatCompletionRequest, settings: ModelSettings) -> dict[str, Any]:
    """The request as llama.cpp's server takes it, with this server's defaults filled in."""
    fields = body.model_dump(
        exclude_none=True,
        exclude={"model", "messages", "stream", "user", "max_tokens", "max_completion_tokens"},
        by_alias=True,
    )
    # SmolLM2's chat template knows no "developer" role; OpenAI treats it as the new "system".
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in body.messages
    ]
    fields.setdefault("temperature", settings.chat_default_temperature)
    # A cap always: llama.cpp's default is "until the context is full", minutes of CPU here.
    limit = body.max_completion_tokens or body.max_tokens or settings.chat_default_max_tokens
    return {**fields, "messages": messages, "max_tokens": limit}
