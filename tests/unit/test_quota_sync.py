"""Quotas written behind (apps/intake/quotas.py), on the real state layer over an in-memory
FAKE of the Dapr client that keeps Dapr's ETag rules (tests/doubles/memory_dapr.py): what a
replica charges in memory reaches the shared ledger, replicas merge without losing each
other's charges, and a busy tenant costs a write per interval, not per submit. The running
stack is covered by tests/integration/test_quotas.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from dapr.aio.clients import DaprClient

from apps.intake import quotas
from apps.intake.quotas import QuotaExceeded, Quotas, Submit
from apps.intake.settings import QuotaSettings
from jobrelay import keys
from jobrelay.state import State
from jobrelay.store import JobStore
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio


def _replica(dapr: MemoryDapr, **limits: Any) -> Quotas:
    state = State(cast(DaprClient, dapr))
    settings = QuotaSettings.model_validate({"enabled": True, **limits})
    return Quotas(state, JobStore(state, retention_seconds=60), settings)


def _ledger(dapr: MemoryDapr, tenant: str = "t") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(dapr.rows[("statestore", keys.quota(tenant))].value)
    return loaded


@pytest.fixture(autouse=True)
def quick_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quotas, "SYNC_SECONDS", 0.01)


async def test_a_burst_of_charges_costs_a_few_ledger_writes_not_one_each() -> None:
    dapr = MemoryDapr()
    replica = _replica(dapr)

    await asyncio.gather(*(replica.admit(Submit("t", f"job{i}")) for i in range(200)))
    await asyncio.sleep(0.1)  # the write behind

    assert len(_ledger(dapr)["queued"]) == 200
    assert _ledger(dapr)["current"] == 200
    assert dapr.calls["save_state"] + dapr.calls["save_bulk_state"] <= 5


async def test_two_replicas_merge_their_charges_and_lose_none() -> None:
    dapr = MemoryDapr()
    first, second = _replica(dapr), _replica(dapr)

    await asyncio.gather(
        *(first.admit(Submit("t", f"a{i}")) for i in range(50)),
        *(second.admit(Submit("t", f"b{i}")) for i in range(50)),
    )
    await asyncio.sleep(0.1)

    assert len(_ledger(dapr)["queued"]) == 100
    assert _ledger(dapr)["current"] == 100


async def test_within_one_replica_the_waiting_cap_is_exact() -> None:
    dapr = MemoryDapr()
    replica = _replica(dapr, queued_jobs=10)

    outcomes = await asyncio.gather(
        *(replica.admit(Submit("t", f"job{i}")) for i in range(25)), return_exceptions=True
    )

    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert len(refused) == 15
    assert {e.code for e in refused} == {"too_many_queued_jobs"}
