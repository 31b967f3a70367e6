from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from apps.status import reference, stream
from apps.status.cancel import JobFinished, JobNotFound, cancel
from apps.status.deps import HubDep, IndexDep, QueueDep, SettingsDep, SigningSecretsDep
from apps.status.listing import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    BadCursor,
    Filters,
    decode_cursor,
    encode_cursor,
    list_jobs,
)
from apps.status.settings import StatusSettings
from jobrelay import telemetry
from jobrelay.auth import TenantDep
from jobrelay.conflicts import Contended
from jobrelay.constants import RETRY_AFTER_SECONDS
from jobrelay.contract import ErrorBody, JobList, JobRecord, JobStatus, JobView
from jobrelay.errors import ApiError
from jobrelay.event_ids import NOTHING_SEEN, EventId
from jobrelay.service import JobsDep, SidecarDep

router = APIRouter(tags=["jobs"])

# Ids are uuid4 hex. Anything else cannot name a job, so it is answered 404 like any unknown
# id (not 422: to a client both mean "no such job") without a store round trip.
_JOB_ID = re.compile(r"[0-9a-f]{32}")

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid API key."},
    404: {"model": ErrorBody, "description": "No such job of yours (or it expired)."},
    503: {"model": ErrorBody, "description": "Store unreachable; retry later."},
}
# ErrorBody in the spec's components (every other route's errors put it there).
_ERROR_BODY_REF = "#/components/schemas/ErrorBody"
_POLL: dict[int | str, dict[str, Any]] = {
    202: {"model": JobView, "description": "Queued or running; poll again after Retry-After."},
    **_NOT_FOUND,
}


async def existing_job(job_id: str, jobs: JobsDep, tenant: TenantDep) -> JobRecord:
    versioned = await jobs.get(job_id) if _JOB_ID.fullmatch(job_id) else None
    # Another tenant's job answers exactly as a missing one: a 403 would confirm that the
    # id exists, and let a caller probe for other tenants' jobs.
    if versioned is None or versioned.record.tenant != tenant:
        raise ApiError(404, "job_not_found", f"no job with id {job_id}")
    # A poll is the client's own trace; it names the job and links to the job's trace.
    telemetry.bind_job(job_id, versioned.record.task, versioned.record.traceparent)
    return versioned.record


JobDep = Annotated[JobRecord, Depends(existing_job)]


def _poll_answer(record: JobRecord, response: Response, settings: StatusSettings) -> JobView:
    if not record.status.terminal:
        response.status_code = 202
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JobView.of(record, settings.public_base_url)


@router.get("/v1/jobs/{job_id}", responses=_POLL)
async def get_job(
    record: JobDep, response: Response, settings: SettingsDep, queue: QueueDep
) -> JobView:
    """The job: 200 once terminal (whatever the outcome), 202 + Retry-After before. While
    it is queued, `queue` says where it stands among your queued jobs (an estimate)."""
    view = _poll_answer(record, response, settings)
    if record.status is JobStatus.QUEUED:
        view = view.model_copy(update={"queue": await queue.of(record)})
    return view


_LIST: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad cursor, limit or metadata filter."},
    401: _NOT_FOUND[401],
    503: _NOT_FOUND[503],
}


@router.get("/v1/jobs", responses=_LIST)
async def list_my_jobs(
    request: Request,
    tenant: TenantDep,
    jobs: JobsDep,
    index: IndexDep,
    settings: SettingsDep,
    status: Annotated[list[JobStatus] | None, Query(description="Keep these (repeat).")] = None,
    task: Annotated[str | None, Query(description="Keep this task's jobs.")] = None,
    created_after: Annotated[
        datetime | None, Query(description="Keep jobs created at or after (ISO 8601).")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="Keep jobs created before (ISO 8601).")
    ] = None,
    metadata: Annotated[
        list[str] | None, Query(description="`key=value`: keep jobs labelled so (repeat).")
    ] = None,
    limit: Annotated[int, Query(description=f"Results per page, 1 to {MAX_LIMIT}.")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[str | None, Query(description="From a previous page's `next`.")] = None,
) -> JobList:
    """Your jobs, newest first, a page at a time: follow `next` until it is null."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_limit", f"limit must be 1 to {MAX_LIMIT}, not {limit}")
    try:
        before = decode_cursor(cursor) if cursor is not None else None
    except BadCursor as exc:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave") from exc
    filters = Filters(
        statuses=frozenset(status or ()),
        task=task,
        created_after=_aware(created_after),
        created_before=_aware(created_before),
        metadata=_metadata_filter(metadata or []),
    )
    listed = await list_jobs(index, jobs, tenant, filters, limit, before)
    next_url = None
    if listed.before is not None:
        query = request.url.include_query_params(cursor=encode_cursor(listed.before)).query
        next_url = f"{settings.public_base_url.rstrip('/')}/v1/jobs?{query}"
    views = [JobView.of(r, settings.public_base_url) for r in listed.records]
    return JobList(results=views, next=next_url)


def _metadata_filter(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ApiError(400, "invalid_filter", f"metadata must be key=value, not {pair!r}")
        out[key] = value
    return out


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC, as every time jobrelay shows is."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


_REFERENCE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": reference.ReferenceResult,
        "description": "Done: `status` `completed` with the markdown in `data.result`, or "
        "`failed` (`cancelled`, `expired`) with the reason there and in `message`.",
    },
    202: {
        "model": reference.ReferencePending,
        "description": "Queued or running; poll again after Retry-After (whole seconds).",
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}},
    },
    **_NOT_FOUND,
}


# Unset fields are left out, so a completed job's answer is exactly {"id", "status", "data"}.
@router.get("/api/results/{job_id}", responses=_REFERENCE, response_model_exclude_none=True)
async def get_result(
    record: JobDep, response: Response
) -> reference.ReferenceResult | reference.ReferencePending:
    """`results_url` of POST /api/process, in the reference sample's contract
    (apps/status/reference.py): 202 + Retry-After + `{"message"}`, then 200 + the markdown."""
    if not record.status.terminal:
        response.status_code = 202
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return reference.pending(record)
    return reference.finished(record)


@router.delete(
    "/v1/jobs/{job_id}",
    responses={409: {"model": ErrorBody, "description": "Already finished."}, **_NOT_FOUND},
)
async def cancel_job(
    job_id: str, sidecar: SidecarDep, settings: SettingsDep, tenant: TenantDep
) -> JobView:
    """Cancel a job: a queued one never runs; a running one's result is discarded."""
    if not _JOB_ID.fullmatch(job_id):
        raise ApiError(404, "job_not_found", f"no job with id {job_id}")
    telemetry.bind_job(job_id)
    try:
        cancelled = await cancel(sidecar.jobs, job_id, tenant)
    except JobNotFound as exc:
        raise ApiError(404, "job_not_found", f"no job with id {job_id}") from exc
    except JobFinished as exc:
        raise ApiError(409, "job_finished", f"the job is already {exc}") from exc
    except Contended as exc:
        raise ApiError(409, "job_busy", "the job changed while being cancelled; try again") from exc
    await sidecar.events.changed(cancelled)
    return JobView.of(cancelled, settings.public_base_url)


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "A stream of the job's states (and a chat or summarize job's "
            "`delta` events), ending at a terminal one."
        },
        # The errors are JSON, not a stream: said explicitly, since FastAPI would otherwise
        # declare them in the route's media type (found by the schemathesis run).
        **{
            status: {
                "description": answer["description"],
                "content": {"application/json": {"schema": {"$ref": _ERROR_BODY_REF}}},
            }
            for status, answer in _NOT_FOUND.items()
        },
    },
)
async def job_events(
    record: JobDep,
    settings: SettingsDep,
    hub: HubDep,
    sidecar: SidecarDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: the job now, then each change; `id` is the record's `seq`. A chat
    or summarize job also sends `delta` events (`{"text": ...}`, id `{seq}.{n}`) between
    `running` and the end. A reconnect with `Last-Event-ID` resumes exactly after what the
    client has seen, on any replica, until the job expires."""
    seen = EventId.parse(last_event_id) or NOTHING_SEEN
    async for event in stream.job_events(
        hub, sidecar.deltas, record.id, seen, settings.public_base_url
    ):
        yield event


class WebhookSecret(BaseModel):
    """The secret that signs your tenant's webhooks."""

    key: str = Field(
        description="Standard Webhooks signing secret (`whsec_` + base64): verify each "
        "delivery's `webhook-signature` with it."
    )


@router.get(
    "/v1/webhooks/secret",
    tags=["webhooks"],
    responses={
        401: _NOT_FOUND[401],
        404: {"model": ErrorBody, "description": "Your tenant has no webhook secret yet."},
        503: {"model": ErrorBody, "description": "Secret store unreachable; retry later."},
    },
)
async def get_webhook_secret(
    tenant: TenantDep,
    response: Response,
    secrets: SigningSecretsDep,
) -> WebhookSecret:
    """Your tenant's webhook signing secret, and only yours: each tenant has its own, so a
    delivery that verifies came from jobrelay for you."""
    secret = await secrets.for_tenant(tenant)
    if secret is None:
        raise ApiError(
            404,
            "webhook_secret_not_found",
            "your tenant has no webhook signing secret; ask the operator to create one",
        )
    response.headers["Cache-Control"] = "no-store"  # a credential: no cache may keep it
    return WebhookSecret(key=secret)
