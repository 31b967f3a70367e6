"""Where the client finds jobrelay, read once from the environment (or given in code)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    """`JOBRELAY_INTAKE_URL`, `JOBRELAY_STATUS_URL`, `JOBRELAY_API_KEY`; defaults suit
    `make run` on this machine."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_", extra="ignore", frozen=True)

    intake_url: str = Field(default="http://127.0.0.1:8000", description="Where jobs are sent.")
    status_url: str = Field(default="http://127.0.0.1:8001", description="Where jobs are read.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Sent as `Authorization: Bearer <key>` on every request, once the "
        "server requires authentication; harmless before.",
    )
