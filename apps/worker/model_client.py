"""A job's view of the models: what its task calls, through the gateway.

One ModelClient per delivery: it carries the job's task (its fallback list), deadline and
attempt, and collects every call for the job's record.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx2
import numpy as np
import numpy.typing as npt
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from apps.worker.fair_gate import Turn
from apps.worker.gateway import CapabilityUnavailable, Gateway
from apps.worker.profiles import ModelProfile
from apps.worker.streaming import DeltaWriter, StreamInterrupted
from jobrelay.contract import ModelCall, Usage
from jobrelay.task_catalog import Capability

Vectors = npt.NDArray[np.float32]

__all__ = ["CapabilityUnavailable", "EmbeddingCall", "ModelClient", "Vectors"]


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    vectors: Vectors  # (n, d), unit length
    usage: Usage
    model: str


def _unit(vectors: Vectors) -> Vectors:
    # Hosted models mostly return unit vectors already; normalising makes dot product mean
    # cosine similarity whatever the backend.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


@dataclass(frozen=True, slots=True)
class _Embeddings:
    """An embeddings answer as read off the wire (named as the SDK's, for genai.py)."""

    vectors: Vectors
    usage: Usage
    model: str


def _vector(embedding: str | list[float]) -> Vectors:
    if isinstance(embedding, str):  # little-endian float32s, base64 (`encoding_format`)
        decoded: Vectors = np.frombuffer(base64.b64decode(embedding), dtype="<f4")
        return decoded
    return np.asarray(embedding, dtype=np.float32)


def _embeddings(body: dict[str, Any], profile: ModelProfile) -> _Embeddings:
    """An OpenAI embeddings answer: vectors in input order, as floats or base64 (a backend
    may answer floats whatever was asked)."""
    ordered = sorted(body["data"], key=lambda d: d["index"])
    vectors = np.stack([_vector(d["embedding"]) for d in ordered]).astype(np.float32)
    used = body.get("usage") or {}
    prompt = int(used.get("prompt_tokens", 0))
    usage = Usage(prompt_tokens=prompt, total_tokens=int(used.get("total_tokens", prompt)))
    return _Embeddings(vectors, usage, str(body.get("model") or profile.model))


def estimate_tokens(texts: list[str]) -> int:
    """About four characters a token: close enough for per-minute budgets."""
    return sum(len(t) for t in texts) // 4 + 1


def chat_usage(completion: ChatCompletion) -> Usage:
    usage = completion.usage
    if usage is None:
        return Usage(prompt_tokens=0, total_tokens=0)
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


_NO_MODEL = {
    Capability.EMBEDDINGS: "embeddings",
    Capability.CHAT: "chat completions",
    Capability.VISION: "images (a vision model)",
}


class ModelClient:
    def __init__(
        self,
        gateway: Gateway,
        task: str,
        deadline: datetime | None,
        attempt: int,
        budget: int | None = None,
        deltas: DeltaWriter | None = None,
        turn: Turn | None = None,
    ) -> None:
        self._gateway = gateway
        # Set for a streaming task (apps/worker/streaming.py): its chat calls stream.
        self._deltas = deltas
        self._turn = turn  # the job's priority and tenant: its place in the gateway's wait
        self._budget = budget  # model calls this attempt may still make
        self._task = task
        self._deadline = deadline
        self._attempt = attempt
        self.calls: list[ModelCall] = []
        # Every embedding of one job comes from one model: a text and its labels compared
        # across two models would be meaningless. The first call picks (through the fallback
        # list); later calls stay on that profile.
        self._embedder: ModelProfile | None = None

    async def _call(
        self, capability: Capability, op: Any, tokens: int, pinned: ModelProfile | None = None
    ) -> tuple[Any, ModelProfile]:
        chain = [pinned] if pinned else self._gateway.catalog.chain(self._task, capability)
        if not chain:
            raise CapabilityUnavailable(
                f"{self._task} needs a model for {_NO_MODEL[capability]}, and no profile for "
                f"it has that capability: add one to the task's list in the models file "
                f"(JOBRELAY_WORKER_MODELS_FILE; see config/models.example.yaml)"
            )
        return await self._gateway.call(
            chain,
            capability,
            self._deadline,
            self.calls,
            self._attempt,
            op,
            tokens,
            self._budget,
            self._turn,
        )

    def can(self, capability: Capability) -> bool:
        """Whether any of the task's model profiles has `capability`."""
        return bool(self._gateway.catalog.chain(self._task, capability))

    async def embed(self, texts: list[str]) -> EmbeddingCall:
        async def op(client: AsyncOpenAI, profile: ModelProfile, seconds: float) -> Any:
            # The SDK's plain `post` (its documented way to send a request as it is): the
            # typed `embeddings.create` transforms the request and builds a model of the
            # answer field by field, which costs more than the whole rest of a small job.
            # Errors are raised exactly as from `create`.
            raw = await client.post(
                "/embeddings",
                cast_to=httpx2.Response,
                body={"model": profile.model, "input": texts, "encoding_format": "base64"},
                options={"timeout": seconds},
            )
            return _embeddings(json.loads(raw.content), profile)

        answer, profile = await self._call(
            Capability.EMBEDDINGS, op, estimate_tokens(texts), self._embedder
        )
        self._embedder = profile
        return EmbeddingCall(_unit(answer.vectors), answer.usage, answer.model)

    async def embed_labels(self, labels: list[str], tenant: str) -> EmbeddingCall:
        """Vectors for `labels`, calling the model only for labels it has not embedded yet
        for `tenant` (never another tenant's: see the gateway's label cache)."""
        if self._embedder is None:
            first = await self.embed(labels[:1])  # pins the model the rest must come from
            self._gateway.remember_labels(tenant, first.model, {labels[0]: first.vectors[0]})
        assert self._embedder is not None
        model = self._embedder.model
        cache = self._gateway.labels
        missing = list(
            dict.fromkeys(label for label in labels if (tenant, model, label) not in cache)
        )
        usage = Usage(prompt_tokens=0, total_tokens=0)
        if missing:
            call = await self.embed(missing)
            vectors = dict(zip(missing, call.vectors, strict=True))
            self._gateway.remember_labels(tenant, model, vectors)
            usage = call.usage
        stacked = np.stack([cache[(tenant, model, label)] for label in labels])
        return EmbeddingCall(stacked, usage, model)

    async def chat(
        self, body: dict[str, Any], capability: Capability = Capability.CHAT
    ) -> ChatCompletion:
        """A chat completion for `body` (an OpenAI request body; its `model` is the profile's)."""
        messages = body.get("messages", [])
        tokens = estimate_tokens([str(m.get("content", "")) for m in messages]) + int(
            body.get("max_tokens") or body.get("max_completion_tokens") or 0
        )

        deltas = self._deltas if capability is Capability.CHAT and _text_only(body) else None

        async def op(client: AsyncOpenAI, profile: ModelProfile, seconds: float) -> Any:
            if deltas is not None:
                return await _streamed(client, {**body, "model": profile.model}, seconds, deltas)
            return await client.chat.completions.create(
                **{**body, "model": profile.model, "stream": False}, timeout=seconds
            )

        completion, _ = await self._call(capability, op, tokens)
        result: ChatCompletion = completion
        return result

    async def describe_image(self, prompt: str, data_url: str) -> tuple[str, Usage, str]:
        """The vision model's answer about the image at `data_url`: (text, usage, model)."""
        content = [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": data_url}},
        ]
        completion = await self.chat(
            {"messages": [{"role": "user", "content": content}]}, Capability.VISION
        )
        return completion.choices[0].message.content or "", chat_usage(completion), completion.model


def _text_only(body: dict[str, Any]) -> bool:
    """Whether the answer `body` asks for is its text alone, and so can stream as deltas.

    Tool calls and log probabilities come in streamed chunks of their own, which `_streamed`
    does not put back together: such a job gets its whole answer unstreamed (no `delta`
    events) rather than a result without its tool calls or logprobs."""
    return not body.get("tools") and not body.get("logprobs")


async def _streamed(
    client: AsyncOpenAI, body: dict[str, Any], seconds: float, deltas: DeltaWriter
) -> ChatCompletion:
    """The completion, streamed (`stream: true`): each piece of text goes to `deltas` as it
    arrives, and the whole is put together as the unstreamed answer would have been.

    A stream that breaks before any text came is an ordinary failed call (the gateway may
    retry it or try the next model); one that breaks after is StreamInterrupted, which the
    gateway does not retry: the text already streamed would be streamed twice."""
    if deltas.started:
        raise StreamInterrupted("a second model call of a job whose text has streamed")
    text: list[str] = []
    refusal: list[str] = []  # a refusal streams apart from the text, and is not a delta
    last: ChatCompletionChunk | None = None
    finish: str | None = None
    usage: Any = None
    try:
        stream = await client.chat.completions.create(
            **{**body, "stream": True, "stream_options": {"include_usage": True}},
            timeout=seconds,
        )
        async for chunk in stream:
            last = chunk
            usage = chunk.usage or usage
            for choice in chunk.choices:
                if choice.index != 0:
                    continue
                if choice.delta.content:
                    text.append(choice.delta.content)
                    deltas.add(choice.delta.content)
                if choice.delta.refusal:
                    refusal.append(choice.delta.refusal)
                finish = choice.finish_reason or finish
    except Exception as exc:
        if deltas.started:
            raise StreamInterrupted(
                f"the model's stream broke: {type(exc).__name__}: {exc}"
            ) from exc
        raise
    if last is None:
        raise StreamInterrupted("the model's stream ended without a chunk")
    return ChatCompletion.model_validate(
        {
            "id": last.id,
            "object": "chat.completion",
            "created": last.created,
            "model": last.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(text),
                        "refusal": "".join(refusal) or None,
                    },
                    "finish_reason": finish or "stop",
                }
            ],
            "usage": usage.model_dump() if usage is not None else None,
        }
    )
