"""Intake wired on the in-memory FAKE of the Dapr client (tests/doubles), and a stored batch
input file: what the OpenAI batch engine's unit tests start from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from dapr.aio.clients import DaprClient

from apps.intake.batches.shapes import StoredFile
from apps.intake.quotas import Quotas
from apps.intake.settings import IntakeSettings, QuotaSettings
from apps.intake.submission import Intake
from jobrelay import keys
from jobrelay.hub import EventHub
from jobrelay.service import Sidecar
from tests.doubles.memory_dapr import MemoryDapr

FILE_ID = "file-in"
TENANT = "t"


@dataclass(frozen=True)
class WiredIntake:
    dapr: MemoryDapr
    sidecar: Sidecar
    settings: IntakeSettings
    quotas: Quotas
    intake: Intake


def wired_intake() -> WiredIntake:
    """Intake on a fresh memory store, quotas off."""
    dapr = MemoryDapr()
    sidecar = Sidecar(cast(DaprClient, dapr), retention_seconds=60)
    settings = IntakeSettings()
    quotas = Quotas(sidecar.state, sidecar.jobs, QuotaSettings(enabled=False))
    intake = Intake(sidecar, settings, EventHub("intake-test"), quotas)
    return WiredIntake(dapr, sidecar, settings, quotas, intake)


async def stored_file(sidecar: Sidecar, lines: list[bytes]) -> StoredFile:
    """`lines` uploaded as tenant `t`'s batch file `file-in`, in one chunk."""
    data = b"".join(line + b"\n" for line in lines)
    await sidecar.state.put(keys.file_chunk(keys.file(FILE_ID), 0), data)
    source = StoredFile(
        id=FILE_ID,
        bytes=len(data),
        created_at=0,
        filename="in.jsonl",
        purpose="batch",
        tenant=TENANT,
        chunks=1,
        lines=len(lines),
    )
    await sidecar.state.put(keys.openai_file(FILE_ID), source.model_dump_json())
    return source
