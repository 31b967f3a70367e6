from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_WORKER_"


class WorkerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

    port: int = port_field(_PREFIX, 8003)
    model_base_url: str = Field(
        default="http://127.0.0.1:8002/v1",
        description="OpenAI-compatible endpoint; the built-in local model by default.",
    )
    # The local model ignores the key; the SDK insists on one, so a harmless placeholder.
    model_api_key: SecretStr = Field(default=SecretStr("local"), description="API key.")
    embedding_model: str = Field(default="all-MiniLM-L6-v2", description="Embeddings model id.")
    vision_model: str | None = Field(
        default=None,
        description="Chat model that takes images (e.g. gpt-4o-mini); describe_image needs one.",
    )
    model_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest one model call may take before it is retried."
    )


@lru_cache
def get_settings() -> WorkerSettings:
    return WorkerSettings()
