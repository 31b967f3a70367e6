"""The reference async sample's result contract, for its clients to use unchanged.

Its page and its `test.http` poll `results_url` and understand exactly two answers: `202`
with `Retry-After` (whole seconds) and `{"message": ...}` while the job is pending, and `200`
with `{"id", "status": "completed", "data": {"result": <markdown>}}` when it is done. So a
finished job answers in that shape whatever its outcome: a failure is `200` with status
`failed` and its reason as the markdown `result` (and as `message`, and as jobrelay's
`error`), which that page shows like any result instead of stopping without a word.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from jobrelay.contract import JobRecord, JobStatus


class ReferenceData(BaseModel):
    result: str = Field(description="The job's result as markdown (a failure's reason, if failed).")


class ReferenceError(BaseModel):
    code: str = Field(description="Stable machine-readable code, as in jobrelay's own API.")
    message: str = Field(description="What went wrong, for a person.")


class ReferenceResult(BaseModel):
    """A finished job in the reference sample's shape."""

    id: str = Field(description="The job's id.")
    status: str = Field(description="`completed`; or `failed`, `cancelled`, `expired`.")
    data: ReferenceData = Field(description="The result, as markdown.")
    message: str | None = Field(default=None, description="Why it did not complete, if so.")
    error: ReferenceError | None = Field(default=None, description="The same, with its code.")


class ReferencePending(BaseModel):
    """A job not finished yet: poll again after `Retry-After` seconds."""

    message: str = Field(description="Where the job is, for a person.")


_PENDING = {
    JobStatus.QUEUED: "The job is queued and will start shortly.",
    JobStatus.RUNNING: "The job is being processed.",
}


def pending(record: JobRecord) -> ReferencePending:
    return ReferencePending(message=_PENDING.get(record.status, "The job is not finished."))


def finished(record: JobRecord) -> ReferenceResult:
    if record.status is JobStatus.SUCCEEDED and record.result is not None:
        markdown = as_markdown(record.task, record.result.output)
        return ReferenceResult(
            id=record.id, status="completed", data=ReferenceData(result=markdown)
        )
    code = record.error.code if record.error else str(record.status)
    reason = record.error.message if record.error else f"the job was {record.status}"
    return ReferenceResult(
        id=record.id,
        status=str(record.status),
        data=ReferenceData(result=f"**The job {record.status}** (`{code}`): {reason}"),
        message=reason,
        error=ReferenceError(code=code, message=reason),
    )


def as_markdown(task: str, output: dict[str, Any]) -> str:
    """Any task's output as markdown: what a person would want to read of it."""
    if isinstance(output.get("markdown"), str):
        return str(output["markdown"])
    for field in ("description", "summary"):
        if isinstance(output.get(field), str):
            return str(output[field])
    if task == "classify" and "label" in output:
        scores = output.get("scores") or {}
        rows = "\n".join(f"| {label} | {score} |" for label, score in scores.items())
        return f"**{output['label']}**\n\n| label | score |\n| --- | --- |\n{rows}"
    if isinstance(output.get("message"), dict):
        return str(output["message"].get("content") or "")
    return f"```json\n{json.dumps(output, indent=2, ensure_ascii=False)}\n```"
