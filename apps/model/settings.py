from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_MODEL_"

# The model ids this server can load; each is served under exactly this id.
EmbedderName = Literal["all-MiniLM-L6-v2", "multilingual-e5-small", "bge-small-en-v1.5"]


class ModelSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

    port: int = port_field(_PREFIX, 8002)
    threads: int = Field(default=2, ge=1, le=64, description="CPU threads per model call.")
    max_batch: int = Field(default=256, ge=1, description="Most texts one request may embed.")
    embedders: Annotated[list[EmbedderName], NoDecode] = Field(
        default=["all-MiniLM-L6-v2", "multilingual-e5-small", "bge-small-en-v1.5"],
        min_length=1,
        description="Embedding models to serve, comma-separated (each loads in well under 1 s).",
    )
    chat: bool = Field(default=True, description="Serve SmolLM2-135M-Instruct on chat completions.")
    chat_context_tokens: int = Field(
        default=4096, ge=256, le=8192, description="Context window, shared by the slots."
    )
    # One slot by default: on a small host interleaved generations take longer than the same
    # ones one after the other (docs/configuration.md), so parallel slots only add latency
    # there. Raise it on bigger hosts.
    chat_parallel: int = Field(default=1, ge=1, le=16, description="Generations run at once.")
    chat_default_max_tokens: int = Field(
        default=512, ge=1, description="Reply length cap when a request names none."
    )
    # The SmolLM2 authors suggest 0.2; the OpenAI default of 1.0 makes a 135M model ramble.
    chat_default_temperature: float = Field(
        default=0.2, ge=0, le=2, description="Temperature when a request names none."
    )

    @field_validator("embedders", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # An environment variable is a plain "a,b" list; JSON would be a chore to type.
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


@lru_cache
def get_settings() -> ModelSettings:
    return ModelSettings()
