from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jobrelay.constants import CLAIM_LEASE_SECONDS, DUPLICATE_HOLD_SECONDS
from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_WORKER_"
# The checkout's config/; an absolute default, because `dapr run` may start the worker in
# another directory.
_DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "config" / "models.yaml"


class WorkerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

    port: int = port_field(_PREFIX, 8003)
    models_file: Path = Field(
        default=_DEFAULT_MODELS,
        description="Model profiles and each task's fallback list (config/models.yaml).",
    )
    claim_lease_seconds: float = Field(
        default=CLAIM_LEASE_SECONDS,
        gt=0,
        description="How long a claim holds unless renewed; keep it below the broker's "
        "redelivery timeout (the redis profile's processingTimeout).",
    )
    duplicate_hold_seconds: float = Field(
        default=DUPLICATE_HOLD_SECONDS,
        gt=0,
        description="How long a second delivery of a running job waits for it before going "
        "back to the broker; between the lease and the redelivery timeout.",
    )
    max_inflight: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Model calls in flight in this worker; keep dapr.yaml's appMaxConcurrency "
        "for the worker at or below it, so extra messages wait with the broker.",
    )
    output_check_cpu_seconds: int = Field(
        default=2,
        ge=1,
        le=60,
        description="CPU seconds one check of an extract answer against its schema may use "
        "(a child process under RLIMIT_CPU) before the job fails with schema_too_complex.",
    )
    output_check_memory_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=128 * 1024 * 1024,
        description="Address space of that child process (RLIMIT_AS).",
    )


@lru_cache
def get_settings() -> WorkerSettings:
    return WorkerSettings()
