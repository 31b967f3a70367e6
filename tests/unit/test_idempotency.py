"""One Idempotency-Key, one job: a request that owns the key but is slow (in its quota charge,
or in storing its job) is fenced out by the retry that takes the key over, and its own commit
then fails. Runs intake's real accept on the in-memory FAKE of the Dapr client
(tests/doubles/memory_dapr.py), which keeps Dapr's ETag rules."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal, cast

import pytest
from dapr.aio.clients import DaprClient

from apps.intake import submission
from apps.intake.idempotency import KeyReused
from apps.intake.quotas import Charged, Quotas, Submit
from apps.intake.settings import IntakeSettings
from apps.intake.submission import Intake, NotAccepted
from jobrelay import keys
from jobrelay.contract import JobInput, JobMessage, JobRecord
from jobrelay.hub import EventHub
from jobrelay.service import Sidecar
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio

KEY = "order-42"
FINGERPRINT = "the same request"


class _FirstChargeWaits:
    """Quotas whose first charge is slow until the test lets it go: request A's."""

    def __init__(self, slow: bool) -> None:
        self.slow = slow
        self.waiting = asyncio.Event()
        self.go_on = asyncio.Event()
        self.charged: list[str] = []

    async def admit(self, subject: Submit, deadline: datetime | None = None) -> Charged:
        self.charged.append(subject.job_id)
        if self.slow and len(self.charged) == 1:
            self.waiting.set()
            await self.go_on.wait()
        return Charged(None)


def _job() -> JobRecord:
    return JobRecord.new("classify", JobInput(text="a review"), {"labels": ["a", "b"]}, {})


def _published_ids(dapr: MemoryDapr) -> list[str]:
    return [JobMessage.model_validate_json(data).job_id for _, _, data in dapr.published]


@pytest.mark.parametrize("slow_in", ["quota charge", "store"])
async def test_a_slow_owner_of_an_idempotency_key_never_runs_a_second_job(
    monkeypatch: pytest.MonkeyPatch, slow_in: Literal["quota charge", "store"]
) -> None:
    monkeypatch.setattr(submission, "_OWNER_GRACE_SECONDS", 0.05)
    dapr = MemoryDapr()
    sidecar = Sidecar(cast(DaprClient, dapr), retention_seconds=60)
    quotas = _FirstChargeWaits(slow=slow_in == "quota charge")
    # Slow in the store: A publishes, then takes longer than the owner's grace to store.
    delay = 0.5 if slow_in == "store" else 0.0
    settings = IntakeSettings(fault_store_delay_seconds=delay)
    intake = Intake(sidecar, settings, EventHub("intake-test"), cast(Quotas, quotas))
    first, retry = _job(), _job()

    published = asyncio.Event()
    publish = dapr.publish_event

    async def publish_and_tell(pubsub: str, topic: str, data: Any, **kwargs: Any) -> None:
        await publish(pubsub, topic, data, **kwargs)
        published.set()

    monkeypatch.setattr(dapr, "publish_event", publish_and_tell)

    slow_owner = asyncio.create_task(intake.accept(first, KEY, FINGERPRINT))
    await (quotas.waiting if slow_in == "quota charge" else published).wait()
    # The client gives up on A and retries with the same key: past the grace, B takes it.
    taken = await intake.accept(retry, KEY, FINGERPRINT)
    quotas.go_on.set()
    with pytest.raises(NotAccepted):
        await slow_owner

    assert taken.record.id == retry.id
    # Both were published, but A's job can never be stored now, so its message runs nothing.
    assert sorted(_published_ids(dapr)) == sorted([first.id, retry.id])
    assert await sidecar.jobs.get(first.id) is None
    assert await sidecar.jobs.fence(first.id) is None
    assert await sidecar.jobs.get(retry.id) is not None
    claim = dapr.value(keys.idempotency(retry.tenant, KEY))
    assert claim["job_id"] == retry.id
    # A later retry with the key gets B's job, and publishes nothing new.
    messages = len(dapr.published)
    again = await intake.accept(_job(), KEY, FINGERPRINT)
    assert again.record.id == retry.id
    assert len(dapr.published) == messages


async def test_a_different_request_under_a_used_key_is_refused() -> None:
    dapr = MemoryDapr()
    sidecar = Sidecar(cast(DaprClient, dapr), retention_seconds=60)
    quotas = _FirstChargeWaits(slow=False)
    intake = Intake(sidecar, IntakeSettings(), EventHub("intake-test"), cast(Quotas, quotas))
    await intake.accept(_job(), KEY, FINGERPRINT)

    with pytest.raises(KeyReused):
        await intake.accept(_job(), KEY, "another request")
    assert len(dapr.published) == 1
