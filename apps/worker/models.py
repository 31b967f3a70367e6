"""Model calls, through the openai SDK whatever the endpoint (local model or hosted)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from openai import AsyncOpenAI

from apps.worker.settings import WorkerSettings
from jobrelay.contract import Usage

Vectors = npt.NDArray[np.float32]

# Label embeddings kept per worker process; labels repeat across jobs far more than texts do.
_LABEL_CACHE_SIZE = 10_000


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


class CapabilityUnavailable(Exception):
    """No configured model can do what the task needs (see, say, an image)."""


class ModelClient:
    def __init__(self, settings: WorkerSettings) -> None:
        # max_retries=0: retries belong to one policy (Dapr resiliency for now), not to two
        # stacked ones whose delays multiply.
        self._client = AsyncOpenAI(
            base_url=settings.model_base_url,
            api_key=settings.model_api_key.get_secret_value(),
            timeout=settings.model_timeout_seconds,
            max_retries=0,
        )
        self.embedding_model = settings.embedding_model
        self.vision_model = settings.vision_model
        self._labels: dict[str, npt.NDArray[np.float32]] = {}

    async def close(self) -> None:
        await self._client.close()

    async def embed(self, texts: list[str]) -> EmbeddingCall:
        resp = await self._client.embeddings.create(model=self.embedding_model, input=texts)
        ordered = sorted(resp.data, key=lambda d: d.index)
        vectors = np.array([d.embedding for d in ordered], dtype=np.float32)
        usage = Usage(prompt_tokens=resp.usage.prompt_tokens, total_tokens=resp.usage.total_tokens)
        return EmbeddingCall(_unit(vectors), usage, resp.model)

    async def describe_image(self, prompt: str, data_url: str) -> tuple[str, Usage, str]:
        """The vision model's answer about the image at `data_url`: (text, usage, model)."""
        if not self.vision_model:
            raise CapabilityUnavailable(
                "describe_image needs a model that can see images, and none is configured: "
                "set JOBRELAY_WORKER_VISION_MODEL (e.g. gpt-4o-mini) and "
                "JOBRELAY_WORKER_MODEL_BASE_URL / JOBRELAY_WORKER_MODEL_API_KEY to an "
                "endpoint that serves it"
            )
        resp = await self._client.chat.completions.create(
            model=self.vision_model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt},
                        {"type": "image_url", "image_url": {"url": data_url}},
                    ],
                }
            ],
        )
        usage = resp.usage
        counted = Usage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            total_tokens=usage.total_tokens if usage else 0,
        )
        return resp.choices[0].message.content or "", counted, resp.model

    async def embed_labels(self, labels: list[str]) -> EmbeddingCall:
        """Vectors for `labels`, calling the model only for labels not seen before."""
        missing = [label for label in labels if label not in self._labels]
        usage = Usage(prompt_tokens=0, total_tokens=0)
        model = self.embedding_model
        if missing:
            call = await self.embed(missing)
            if len(self._labels) + len(missing) > _LABEL_CACHE_SIZE:
                self._labels.clear()
            self._labels.update(zip(missing, call.vectors, strict=True))
            usage, model = call.usage, call.model
        return EmbeddingCall(np.stack([self._labels[label] for label in labels]), usage, model)
