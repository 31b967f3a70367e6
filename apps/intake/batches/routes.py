"""`/v1/files` and `/v1/batches`: the OpenAI Files and Batch API, as the official `openai`
SDK calls it (`base_url` pointed at intake, the API key as its `api_key`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from apps.intake.batches.engine import Batches
from apps.intake.batches.shapes import BatchObject, CreateBatch, FileObject, StoredFile
from apps.intake.deps import BatchesDep, IntakeApp
from jobrelay.auth import TenantDep
from jobrelay.constants import BATCH_EVENTS_TOPIC, BATCHES_TOPIC, PUBSUB
from jobrelay.contract import ErrorBody
from jobrelay.errors import ApiError
from jobrelay.subscriptions import Delivery, Message, Subscription

router = APIRouter(tags=["openai batch"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Not a batch file, or a malformed form."},
    401: {"model": ErrorBody, "description": "No valid API key."},
    404: {"model": ErrorBody, "description": "No such file or batch of this tenant's."},
    410: {"model": ErrorBody, "description": "Part of the file has expired from the store."},
    409: {"model": ErrorBody, "description": "The batch has ended: it cannot be cancelled."},
    413: {"model": ErrorBody, "description": "The file is larger than the limit."},
    422: {"model": ErrorBody, "description": "Invalid body."},
    503: {"model": ErrorBody, "description": "Store or broker unreachable; retry later."},
}


@router.post("/v1/files", responses=_ERRORS)
async def create_file(request: Request, batches: BatchesDep, tenant: TenantDep) -> FileObject:
    """Upload a batch input file (multipart: `purpose=batch`, `file`): JSONL, one request a
    line. Stored as it streams in."""
    stored = await batches.files.upload(request, tenant)
    return stored.public()


async def _file(batches: Batches, tenant: str, file_id: str) -> StoredFile:
    stored = await batches.files.get(file_id, tenant)
    if stored is None:
        raise ApiError(404, "file_not_found", f"no file {file_id}")
    return stored


@router.get("/v1/files/{file_id}", responses=_ERRORS)
async def retrieve_file(file_id: str, batches: BatchesDep, tenant: TenantDep) -> FileObject:
    return (await _file(batches, tenant, file_id)).public()


@router.get(
    "/v1/files/{file_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/jsonl": {}}, "description": "The file, JSONL."},
        **_ERRORS,
    },
)
async def file_content(file_id: str, batches: BatchesDep, tenant: TenantDep) -> StreamingResponse:
    """The file's bytes (a batch's input, output or error file), streamed chunk by chunk."""
    stored = await _file(batches, tenant, file_id)
    return StreamingResponse(batches.files.content(stored), media_type="application/jsonl")


@router.post("/v1/batches", responses=_ERRORS)
async def create_batch(body: CreateBatch, batches: BatchesDep, tenant: TenantDep) -> BatchObject:
    """Run every line of an uploaded file as a job; the batch starts `validating`."""
    return await batches.create(body, tenant)


@router.get("/v1/batches/{batch_id}", responses=_ERRORS)
async def retrieve_batch(batch_id: str, batches: BatchesDep, tenant: TenantDep) -> BatchObject:
    return await batches.get(batch_id, tenant)


@router.get("/v1/batches", responses=_ERRORS)
async def list_batches(
    batches: BatchesDep,
    tenant: TenantDep,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The tenant's batches, newest first (`after`: the last id of the previous page)."""
    return await batches.list(tenant, after, limit)


@router.post("/v1/batches/{batch_id}/cancel", responses=_ERRORS)
async def cancel_batch(batch_id: str, batches: BatchesDep, tenant: TenantDep) -> BatchObject:
    """Stop the batch: no more lines go out, queued jobs are cancelled, running ones end;
    then `cancelled`, with the lines that never ran in the error file."""
    return await batches.cancel(batch_id, tenant)


def subscribe(app: IntakeApp) -> None:
    """Intake's own batch subscriptions; their handler is built by the lifespan."""

    async def on_step(message: Message) -> Delivery:
        return await app.batches.on_step(message)

    async def on_event(message: Message) -> Delivery:
        return await app.batches.on_event(message)

    app.subscriptions.add(Subscription(PUBSUB, BATCHES_TOPIC), on_step)
    app.subscriptions.add(Subscription(PUBSUB, BATCH_EVENTS_TOPIC), on_event)
