"""The job lanes (jobrelay.lanes): which topic a job goes to, and that every profile's topic
scopes let intake publish and the worker subscribe every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from jobrelay.constants import (
    BATCH_EVENTS_TOPIC,
    BATCHES_TOPIC,
    DEAD_LETTER_TOPIC,
    WEBHOOK_EVENTS_TOPIC,
)
from jobrelay.contract import Priority
from jobrelay.lanes import LEGACY_TOPIC, Lanes, LaneSettings, lane_topic

COMPONENTS = Path(__file__).resolve().parents[2] / "components"


def test_a_tenant_always_lands_on_the_same_shard() -> None:
    lanes = Lanes(LaneSettings(tenant_shards=4))

    # The documented rule (docs/fairness.md), the same in every process and language:
    # SHA-256 of the name, its first 8 bytes big-endian, modulo the shard count. Python's
    # salted hash() would give each intake replica its own answer.
    assert [lanes.shard(t) for t in ("alice", "bob", "carol", "dave")] == [3, 2, 2, 3]
    assert {lanes.shard(f"tenant-{n}") for n in range(100)} == {0, 1, 2, 3}


def test_priorities_of_one_tenant_are_different_topics() -> None:
    lanes = Lanes(LaneSettings(tenant_shards=2))
    shard = lanes.shard("acme")

    assert lanes.topic(Priority.HIGH, "acme") == f"jobs-high-{shard}"
    assert lanes.topic(Priority.LOW, "acme") == f"jobs-low-{shard}"
    assert lanes.topics() == [
        "jobs-high-0",
        "jobs-high-1",
        "jobs-normal-0",
        "jobs-normal-1",
        "jobs-low-0",
        "jobs-low-1",
    ]


def test_a_pinned_tenant_goes_to_its_shard() -> None:
    lanes = Lanes(LaneSettings(tenant_shards=4, tenant_shard_map={"big": 3, "small": 0}))

    assert lanes.topic(Priority.NORMAL, "big") == lane_topic(Priority.NORMAL, 3)
    assert lanes.shard("small") == 0


def test_a_pin_outside_the_shards_is_refused() -> None:
    with pytest.raises(ValidationError, match="not in range"):
        LaneSettings(tenant_shards=2, tenant_shard_map={"big": 2})


def _scopes(value: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for part in value.split(";"):
        app, _, topics = part.partition("=")
        out[app] = {t for t in topics.split(",") if t}
    return out


@pytest.mark.parametrize("profile", ["redis", "rabbitmq", "kafka", "azure"])
def test_every_profile_scopes_every_lane(profile: str) -> None:
    doc = yaml.safe_load((COMPONENTS / profile / "pubsub.yaml").read_text())
    meta = {m["name"]: m.get("value") for m in doc["spec"]["metadata"]}
    lanes = {LEGACY_TOPIC, *Lanes(LaneSettings()).topics()}

    published = _scopes(meta["publishingScopes"])
    subscribed = _scopes(meta["subscriptionScopes"])

    # Intake also publishes its own batch steps and batch line events (apps/intake/batches),
    # and the webhook events of the batch jobs it cancels.
    batches = {BATCHES_TOPIC, BATCH_EVENTS_TOPIC, WEBHOOK_EVENTS_TOPIC}
    assert published["intake"] == lanes | batches
    assert subscribed["worker"] == lanes | {DEAD_LETTER_TOPIC}
    assert not lanes & (published["worker"] | published["status"] | subscribed["status"])
