"""A batch's lines: an input line in OpenAI's format (`custom_id`, `method`, `url`, `body`)
turned into a job, and a finished job turned into an output or error line in OpenAI's format.

A line is validated exactly like `POST /v1/jobs` (apps/intake/requests.py: task catalog,
params, limits), after its OpenAI body is mapped to jobrelay's task: `/v1/embeddings` is
`embed`, `/v1/chat/completions` is `chat`, `/v1/jobs` is a submit body as it stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from apps.intake.batches.shapes import Endpoint, job_id_of
from apps.intake.requests import checked_record
from apps.intake.settings import IntakeSettings
from jobrelay.contract import (
    BatchLine,
    JobInput,
    JobRecord,
    JobStatus,
    JobView,
    Priority,
    SubmitRequest,
)
from jobrelay.errors import ApiError

_MAX_CUSTOM_ID_CHARS = 512
# What an embeddings body may carry besides its input: jobrelay picks the model from the
# task's profiles (config/models.yaml), so `model` is accepted and not used.
_EMBEDDING_FIELDS = {"model", "input", "encoding_format", "user"}


@dataclass(frozen=True, slots=True)
class Refused:
    """A line that makes no job: it goes to the error file with this reason."""

    line: int
    custom_id: str | None
    code: str
    message: str

    def error_line(self) -> dict[str, Any]:
        return error_line(self.custom_id, self.code, self.message, self.line)


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


def error_line(custom_id: str | None, code: str, message: str, line: int) -> dict[str, Any]:
    """An error file line: OpenAI's shape, with jobrelay's stable `code`."""
    return {
        "id": f"batch_req_line{line}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message, "line": line},
    }


def custom_id_of(text: bytes) -> str | None:
    """A line's custom_id, when it can be read at all (for lines never validated)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    value = raw.get("custom_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _submit_of(endpoint: Endpoint, body: dict[str, Any]) -> SubmitRequest:
    """The submit a line asks for. A batch is deferred work, so its lines go `low` unless a
    `/v1/jobs` line names its own priority: a tenant's big batch never holds up the same
    tenant's interactive jobs, which would otherwise wait behind it in one lane."""
    if endpoint is Endpoint.EMBEDDINGS:
        extra = sorted(set(body) - _EMBEDDING_FIELDS)
        if extra:
            raise ApiError(422, "invalid_body", f"embeddings fields not supported: {extra}")
        if body.get("encoding_format", "float") != "float":
            raise ApiError(422, "invalid_body", "encoding_format must be 'float'")
        text = body.get("input")
        if isinstance(text, list) and len(text) == 1:
            text = text[0]
        if not isinstance(text, str) or not text:
            raise ApiError(422, "invalid_body", "input must be one non-empty string per line")
        return SubmitRequest(task="embed", input=JobInput(text=text), priority=Priority.LOW)
    if endpoint is Endpoint.CHAT:
        params = {k: v for k, v in body.items() if k != "model"}
        if params.pop("stream", False):
            raise ApiError(422, "invalid_body", "a batch line cannot stream (stream: true)")
        return SubmitRequest(task="chat", params=params, priority=Priority.LOW)
    try:
        submit = SubmitRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise ApiError(422, "invalid_body", f"{where}: {first['msg']}") from exc
    if "priority" in submit.model_fields_set:
        return submit
    return submit.model_copy(update={"priority": Priority.LOW})


async def parse(
    text: bytes,
    number: int,
    batch_id: str,
    endpoint: Endpoint,
    settings: IntakeSettings,
    tenant: str,
) -> JobRecord | Refused:
    """The job line `number` asks for, or why it is refused."""
    if len(text) > settings.max_json_bytes:
        limit = settings.max_json_bytes
        return Refused(number, custom_id_of(text[:4096]), "line_too_large", f"over {limit} bytes")
    try:
        line = _Line.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"])) or "line"
        return Refused(number, custom_id_of(text), "invalid_line", f"{where}: {first['msg']}")
    if len(line.custom_id) > _MAX_CUSTOM_ID_CHARS:
        return Refused(number, None, "invalid_line", "custom_id is too long")
    if line.method.upper() != "POST":
        return Refused(number, line.custom_id, "invalid_method", "method must be POST")
    if line.url != endpoint.value:
        message = f"the line's url {line.url!r} does not match the batch's endpoint {endpoint}"
        return Refused(number, line.custom_id, "mismatched_url", message)
    try:
        submit = _submit_of(endpoint, line.body)
        record, _ = await checked_record(
            submit, settings, tenant, job_id=job_id_of(batch_id, number)
        )
    except ApiError as exc:
        return Refused(number, line.custom_id, exc.code, exc.message)
    batch = BatchLine(batch_id=batch_id, line=number, custom_id=line.custom_id)
    return record.model_copy(update={"batch": batch})


def _chat_body(record: JobRecord) -> dict[str, Any]:
    assert record.result is not None
    output, created = record.result.output, record.finished_at or record.created_at
    return {
        "id": f"chatcmpl-{record.id}",
        "object": "chat.completion",
        "created": int(created.timestamp()),
        "model": record.result.model,
        "choices": [
            {
                "index": 0,
                "message": output.get("message", {}),
                "finish_reason": output.get("finish_reason"),
                "logprobs": None,
            }
        ],
        "usage": record.result.usage.model_dump(),
    }


def _embeddings_body(record: JobRecord) -> dict[str, Any]:
    assert record.result is not None
    usage = record.result.usage
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": record.result.output["embedding"]}
        ],
        "model": record.result.model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
    }


def result_line(record: JobRecord, endpoint: Endpoint, status_base_url: str) -> dict[str, Any]:
    """The output line (a succeeded job) or error line (any other end) of a batch job."""
    assert record.batch is not None
    line, custom_id = record.batch.line, record.batch.custom_id
    if record.status is not JobStatus.SUCCEEDED:
        code = record.error.code if record.error else f"job_{record.status.value}"
        message = record.error.message if record.error else f"the job was {record.status.value}"
        return error_line(custom_id, code, message, line)
    if endpoint is Endpoint.CHAT:
        body = _chat_body(record)
    elif endpoint is Endpoint.EMBEDDINGS:
        body = _embeddings_body(record)
    else:
        body = JobView.of(record, status_base_url).model_dump(mode="json")
    return {
        "id": f"batch_req_{record.id}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": record.id, "body": body},
        "error": None,
    }
