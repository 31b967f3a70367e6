"""Settings of the baseline designs' processes (bench/baselines), read once from the
environment the benchmark driver gives them."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BaselineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBRELAY_BENCH_", extra="ignore", frozen=True)

    port: int = Field(default=0, ge=0, le=65535, description="Port the API binds on loopback.")
    model_base_url: str = Field(
        default="http://127.0.0.1:1/v1", description="The model double's OpenAI base URL."
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:1/0", description="Celery's broker and result backend."
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:1", description="Base of the status URLs the API hands out."
    )


@lru_cache
def get_settings() -> BaselineSettings:
    return BaselineSettings()
