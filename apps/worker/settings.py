from functools import lru_cache
from pathlib import Path

from pydantic import Field

from jobrelay.constants import ARRIVAL_GRACE_SECONDS, CLAIM_LEASE_SECONDS, DUPLICATE_HOLD_SECONDS
from jobrelay.settings import ServiceSettings, port_field

_PREFIX = "JOBRELAY_WORKER_"
# The checkout's config/; an absolute default, because `dapr run` may start the worker in
# another directory.
_DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "config" / "models.yaml"


class WorkerSettings(ServiceSettings, env_prefix=_PREFIX):
    """The worker's settings, from `JOBRELAY_WORKER_*` (docs/configuration.md)."""

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
        description="Model calls in flight in this worker. Deliveries beyond it wait in the "
        "worker for a free call, so keep dapr.yaml's appMaxConcurrency above it: a delivery "
        "ready the moment a call ends keeps the model busy all the time.",
    )
    tenant_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Tenants' shares of this worker's model calls, as JSON (`{\"acme\": 3}`); "
        "a tenant not listed weighs 1. Among jobs of one priority waiting here, each tenant "
        "gets calls in proportion to its weight (docs/fairness.md).",
    )
    arrival_grace_seconds: float = Field(
        default=ARRIVAL_GRACE_SECONDS,
        gt=0,
        description="How long a message may wait for its job's record (intake publishes "
        "before it stores) before the job is fenced as never accepted; above intake's "
        "JOBRELAY_INTAKE_STORE_WINDOW_SECONDS, with room for clock skew.",
    )
    max_model_calls_per_job: int = Field(
        default=36,
        ge=1,
        le=1000,
        description="Model calls one job may make over all its attempts, retries and "
        "redeliveries included (an operator's replay starts a new count); past it the job "
        "fails `model_call_budget_exhausted` and is listed with the dead letters. The "
        "default is what the retry policy spends at most on the way to the dead letter "
        "(12 deliveries of 3 tries): the policy ends a poison job first, and the budget "
        "holds whatever redelivers it beyond the policy (crashes, processing timeouts).",
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
