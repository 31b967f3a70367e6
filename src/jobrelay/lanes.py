"""Where a job waits on the broker: one topic per lane, a lane being a priority and a shard
of the tenants (docs/fairness.md).

One topic for every job would put one tenant's single job behind another tenant's whole
backlog in the broker's own order (a Redis stream, a RabbitMQ queue, Kafka partitions), and
no worker could reach it before the backlog drained. With a topic per lane, the worker's
sidecar consumes every lane at once, each with its own bounded prefetch, so a job in a quiet
lane reaches the worker after at most a prefetch's worth of the busy lane's jobs; there the
worker's fair gate (apps/worker/fair_gate.py) lets it go first.

A tenant's shard is a stable hash of its name, unless JOBRELAY_TENANT_SHARD_MAP pins it: two
tenants in one shard share its lanes and wait for each other in the broker's order. The
lane is computed from the record intake already holds, so choosing it costs no state call.

Every app that publishes or subscribes a lane reads the same settings (the Go worker reads
JOBRELAY_TENANT_SHARDS too), and the components' topic scopes list every lane of the
default shard count (components/*/pubsub.yaml).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobrelay.constants import JOBS_TOPIC
from jobrelay.contract import Priority

# The topic of every job published before lanes existed: still subscribed by the worker, so
# a backlog left there by an older intake still runs.
LEGACY_TOPIC = JOBS_TOPIC
DEFAULT_SHARDS = 4
MAX_SHARDS = 16


class LaneSettings(BaseSettings):
    """How tenants are spread over lanes; the same in intake and every worker."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_", extra="ignore", frozen=True)

    tenant_shards: int = Field(
        default=DEFAULT_SHARDS,
        ge=1,
        le=MAX_SHARDS,
        description="Tenant shards per priority: each is a topic every worker's sidecar "
        "subscribes. Change it only together with the components' topic scopes.",
    )
    tenant_shard_map: dict[str, int] = Field(
        default_factory=dict,
        description='Tenants pinned to a shard, as JSON (`{"big-tenant": 3}`): keeps a '
        "tenant with a large backlog away from the others' shards.",
    )

    @model_validator(mode="after")
    def _pins_in_range(self) -> LaneSettings:
        for tenant, shard in self.tenant_shard_map.items():
            if not 0 <= shard < self.tenant_shards:
                raise ValueError(f"tenant {tenant!r} pinned to shard {shard}, not in range")
        return self


def lane_topic(priority: Priority, shard: int) -> str:
    return f"jobs-{priority.value}-{shard}"


class Lanes:
    def __init__(self, settings: LaneSettings | None = None) -> None:
        self._settings = settings or LaneSettings()

    def shard(self, tenant: str) -> int:
        pinned = self._settings.tenant_shard_map.get(tenant)
        if pinned is not None:
            return pinned
        return _hashed_shard(tenant, self._settings.tenant_shards)

    def topic(self, priority: Priority, tenant: str) -> str:
        return lane_topic(priority, self.shard(tenant))

    def topics(self) -> list[str]:
        """Every lane, highest priority first."""
        shards = range(self._settings.tenant_shards)
        return [lane_topic(p, s) for p in Priority for s in shards]


@lru_cache(maxsize=65536)
def _hashed_shard(tenant: str, shards: int) -> int:
    # A hash that is the same in every process and language (Python's hash() is salted):
    # the first 8 bytes of SHA-256, big-endian, modulo the shard count.
    digest = hashlib.sha256(tenant.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards
