"""The local chat model (SmolLM2-135M-Instruct on llama.cpp), over real HTTP through the openai
SDK. No fakes: every reply here is the model's own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
from openai import AsyncOpenAI

from tests.unit.conftest import TEST_CONTEXT_TOKENS

CHAT = "SmolLM2-135M-Instruct"


@pytest.fixture
async def client(local_models_url: str) -> AsyncIterator[AsyncOpenAI]:
    # Closed inside the test's event loop; left to the garbage collector, the client would
    # close its connections on a loop that no longer exists.
    async with AsyncOpenAI(
        base_url=local_models_url, api_key="local", max_retries=0, timeout=60
    ) as client:
        yield client


@pytest.mark.anyio
async def test_a_short_summary_keeps_the_facts_and_counts_tokens(client: AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(
        model=CHAT,
        messages=[
            {
                "role": "user",
                "content": "Summarize in one sentence: The meeting moved from Monday to "
                "Wednesday because the manager is travelling.",
            }
        ],
        max_tokens=60,
        temperature=0,
    )
    choice = resp.choices[0]
    assert "Wednesday" in (choice.message.content or "")
    assert choice.finish_reason == "stop"
    assert resp.model == CHAT
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 10
    assert resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


@pytest.mark.anyio
async def test_json_schema_output_parses_and_keeps_to_the_schema(client: AsyncOpenAI) -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "product": {"type": "string"},
        },
        "required": ["sentiment", "product"],
        "additionalProperties": False,
    }
    resp = await client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Review: 'This kettle is wonderful.' Extract it."}],
        max_tokens=80,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    )
    answer = json.loads(resp.choices[0].message.content or "")
    assert set(answer) == {"sentiment", "product"}
    assert answer["sentiment"] in {"positive", "negative", "neutral"}
    assert isinstance(answer["product"], str)


@pytest.mark.anyio
async def test_max_tokens_cuts_the_reply_and_says_so(client: AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Write a long story about a lighthouse."}],
        max_tokens=5,
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 5


@pytest.mark.anyio
async def test_a_prompt_past_the_context_is_refused_as_the_openai_api_would(
    client: AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "word " * (2 * TEST_CONTEXT_TOKENS)}],
            max_tokens=5,
        )
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.anyio
async def test_fields_the_server_cannot_honour_are_refused_not_ignored(
    client: AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError, match="tools"):
        await client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )


@pytest.mark.anyio
async def test_models_lists_the_chat_model_and_the_embedders(client: AsyncOpenAI) -> None:
    ids = {model.id async for model in client.models.list()}
    assert ids == {
        CHAT,
        "all-MiniLM-L6-v2",
        "multilingual-e5-small",
        "bge-small-en-v1.5",
        "e5-bge-small",
    }


@pytest.mark.anyio
async def test_a_streamed_reply_comes_in_chunks_that_add_up_to_the_unstreamed_one(
    client: AsyncOpenAI,
) -> None:
    prompt = "Name three colours of the rainbow."
    whole = await client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=24,
        temperature=0,
        seed=7,
    )
    pieces: list[str] = []
    usage = None
    stream = await client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=24,
        temperature=0,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == CHAT
        usage = chunk.usage or usage
        pieces.extend(c.delta.content for c in chunk.choices if c.delta.content)
    # Token by token, not one piece after the whole generation.
    assert len(pieces) >= 5
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None
    assert usage.completion_tokens == len(pieces)


@pytest.mark.anyio
async def test_a_streamed_prompt_past_the_context_is_refused_before_the_stream(
    client: AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "word " * (2 * TEST_CONTEXT_TOKENS)}],
            max_tokens=5,
            stream=True,
        )
    assert caught.value.code == "context_length_exceeded"
