from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_STATUS_"


class StatusSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

    port: int = port_field(_PREFIX, 8001)
    public_base_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Public base URL of this app, used in the status_url of answers.",
    )
    intake_public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public base URL of intake, where the web page (/ui/) submits jobs.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks signing secret (`whsec_` + base64) used while "
        "authentication is off (every caller is tenant `default`); with it on, each tenant's "
        "own secret from `webhook_secrets_name` signs instead (apps/status/signing.py). "
        "Without a secret, deliveries are recorded as failed: jobrelay never sends unsigned "
        "webhooks.",
    )
    webhook_secrets_name: str = Field(
        default="WEBHOOK_SECRETS",
        description="The secret, in the store JOBRELAY_AUTH_SECRET_STORE, holding the "
        "tenants' signing secrets as a JSON object tenant -> whsec_...",
    )
    webhook_secrets_refresh_seconds: float = Field(
        default=30, gt=0, description="How stale the tenants' signing secrets may get."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins whose pages may read jobs and results (CORS), as JSON: "
        "the reference sample's page, say, served from its own origin. Never `*`.",
    )
    webhook_attempts: int = Field(default=5, ge=1, le=20, description="Tries per delivery.")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="Per try.")
    webhook_concurrency_per_tenant: int = Field(
        default=4,
        ge=1,
        description="Webhook requests in flight at once for one tenant, in this replica: a "
        "tenant whose receivers never answer holds up its own webhooks, not others'.",
    )
    webhook_concurrency_per_target: int = Field(
        default=8,
        ge=1,
        description="Webhook requests in flight at once to one receiver (scheme, host, port), "
        "in this replica, whichever tenants send them.",
    )
    webhook_backlog_per_tenant: int = Field(
        default=2000,
        ge=1,
        description="Deliveries of one tenant waiting or in progress in this replica; past "
        "it a webhook is recorded as not sent.",
    )


@lru_cache
def get_settings() -> StatusSettings:
    return StatusSettings()
