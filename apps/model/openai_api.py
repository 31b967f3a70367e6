"""The subset of the OpenAI HTTP API the local model serves, as pydantic models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EmbeddingRequest(BaseModel):
    input: str | list[str] = Field(description="Text, or texts, to embed.")
    model: str = Field(description="Model id; see GET /v1/models.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="`base64`: each vector as little-endian float32 (what the openai SDK asks).",
    )


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "jobrelay-local"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIError(BaseModel):
    message: str
    type: str
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """The OpenAI error shape, so the openai SDK raises its usual typed exceptions."""

    error: OpenAIError
