from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobrelay.auth import DEFAULT_TENANT
from jobrelay.constants import STORE_WINDOW_SECONDS
from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_INTAKE_"


class IntakeSettings(ServiceSettings, env_prefix=_PREFIX):
    """intake's settings, from `JOBRELAY_INTAKE_*` (docs/configuration.md). Its quotas are
    QuotaSettings (`JOBRELAY_QUOTA_*`), below."""

    port: int = port_field(_PREFIX, 8000)
    status_base_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Public base URL of the status app; status_url and Location point there.",
    )
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Largest file a job may upload (413 above)."
    )
    max_json_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest JSON body of a submit (413 above)."
    )
    max_batch_file_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        description="Largest input file of an OpenAI-style batch (`POST /v1/files`, 413 above).",
    )
    # Metadata is the client's to label jobs with, stored on the record and echoed in every
    # answer: caps keep one tenant from filling the store and the broker's
    # event stream with it (issue 17). Well above what labels need (Stripe's are 50 x 500).
    max_metadata_keys: int = Field(
        default=32, ge=0, description="Most metadata entries per job (413 above)."
    )
    max_metadata_key_chars: int = Field(
        default=64, ge=1, description="Longest metadata key, in characters."
    )
    max_metadata_value_chars: int = Field(
        default=512, ge=1, description="Longest metadata value, in characters."
    )
    store_window_seconds: float = Field(
        default=STORE_WINDOW_SECONDS,
        gt=0,
        description="Longest time between publishing a job and storing its record; past it "
        "the submit answers 503 not_accepted. Keep it well below the worker's "
        "JOBRELAY_WORKER_ARRIVAL_GRACE_SECONDS, after which a worker fences the job.",
    )
    fault: Literal["exit_after_publish", "exit_after_store", "fail_store"] | None = Field(
        default=None,
        description="Testing only (tests/chaos): die right after publishing a job or right "
        "after storing it, or fail its store, to prove no job is left half-accepted.",
    )
    fault_store_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Testing only (tests/chaos): wait this long between publishing a job and "
        "storing it, so the worker's delivery arrives before the record.",
    )
    operators: list[str] = Field(
        default_factory=lambda: [DEFAULT_TENANT],
        description="Tenants allowed the admin routes (dead letters), as JSON. The default is "
        "the tenant every caller is while authentication is off (loopback development); with "
        "authentication on, name your operators' tenants.",
    )
    compat_task: str = Field(
        default="read_document",
        description="Task run for uploads to POST /api/process (the reference client's route). "
        "read_document gives the text read as markdown, with a vision model's description "
        "where the task's model profiles have one.",
    )
    compat_params: dict[str, Any] = Field(
        default_factory=lambda: {"summary": True},
        description="Parameters of that task, as JSON (default: add a short summary).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to submit jobs (CORS), as JSON, besides the "
        "origin of status_base_url, which serves jobrelay's own web page.",
    )

    def browser_origins(self) -> list[str]:
        """Origins whose pages may POST jobs: the web page's (status), plus any configured.
        Never `*`: a page on any site could otherwise spend a signed-in user's quota."""
        status = urlsplit(self.status_base_url)
        return [f"{status.scheme}://{status.netloc}", *self.cors_origins]


class TenantLimits(BaseModel):
    """One tenant's limits; `null` (None) means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    submissions_per_minute: int | None = Field(
        default=None, ge=1, description="Jobs accepted in any sixty seconds."
    )
    queued_jobs: int | None = Field(
        default=None, ge=1, description="Jobs accepted and not yet started."
    )


class QuotaSettings(BaseSettings):
    # `null` in an environment variable turns that default limit off.
    model_config = SettingsConfigDict(
        env_prefix="JOBRELAY_QUOTA_", extra="ignore", frozen=True, env_parse_none_str="null"
    )

    enabled: bool = Field(default=True, description="false: no quotas for anyone.")
    # Generous: a person trying jobrelay, or the test suite, never meets them; they stop one
    # runaway client from filling the queue ahead of every other tenant.
    submissions_per_minute: int | None = Field(
        default=3000, ge=1, description="Every tenant's default; `null` = no limit."
    )
    queued_jobs: int | None = Field(
        default=2000, ge=1, description="Every tenant's default; `null` = no limit."
    )
    tenants: dict[str, TenantLimits] = Field(
        default_factory=dict,
        description='Per-tenant overrides as JSON, e.g. {"acme": {"queued_jobs": 50}}; '
        "a limit left out keeps the default, `null` lifts it.",
    )

    def limits(self, tenant: str) -> TenantLimits:
        if not self.enabled:
            return TenantLimits()
        chosen = {"submissions_per_minute": self.submissions_per_minute}
        chosen["queued_jobs"] = self.queued_jobs
        override = self.tenants.get(tenant)
        if override is not None:
            chosen.update(override.model_dump(exclude_unset=True))
        return TenantLimits.model_validate(chosen)


@lru_cache
def get_settings() -> IntakeSettings:
    return IntakeSettings()


@lru_cache
def get_quota_settings() -> QuotaSettings:
    return QuotaSettings()
