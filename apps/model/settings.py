from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_MODEL_"


class ModelSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

    port: int = port_field(_PREFIX, 8002)
    threads: int = Field(default=2, ge=1, le=64, description="onnxruntime threads per batch.")
    max_batch: int = Field(default=256, ge=1, description="Most texts one request may embed.")


@lru_cache
def get_settings() -> ModelSettings:
    return ModelSettings()
