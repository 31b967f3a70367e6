from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_INTAKE_"


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

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
    delivery: Literal["outbox", "direct"] = Field(
        default="outbox",
        description="`outbox`: a job's record and its message commit together (the state "
        "store's outbox), at the cost of Dapr 1.18's one-second relay wait per job. "
        "`direct`: store, then publish: no wait, but a crash between the two leaves a "
        "queued job that nothing will run.",
    )
    fault: Literal["exit_after_store"] | None = Field(
        default=None,
        description="Testing only (tests/chaos): exit right after a job is stored, before "
        "answering, to prove no job is left half-accepted.",
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


@lru_cache
def get_settings() -> IntakeSettings:
    return IntakeSettings()
