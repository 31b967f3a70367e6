from __future__ import annotations

from apps.worker.model_client import ModelClient
from jobrelay.contract import JobRecord, JobResult


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    call = await models.embed([record.input.require_text()])
    vector = call.vectors[0].tolist()
    return JobResult(
        output={"embedding": vector, "dimensions": len(vector)}, model=call.model, usage=call.usage
    )
