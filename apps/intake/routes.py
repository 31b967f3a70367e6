from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from apps.intake import idempotency
from apps.intake.deps import IntakeDep
from apps.intake.requests import from_form, from_json
from apps.intake.submission import Accepted, Intake
from jobrelay.auth import TenantDep
from jobrelay.constants import MAX_WAIT_SECONDS, RETRY_AFTER_SECONDS
from jobrelay.contract import ErrorBody, JobView, SubmitRequest
from jobrelay.task_catalog import TASKS

router = APIRouter(tags=["jobs"])
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Same key, same request: the same job back."),
]
Prefer = Annotated[
    str | None,
    Header(
        description=f"`wait=N` (N <= {MAX_WAIT_SECONDS}): hold the answer until the job "
        "is done, then answer 200; 202 as usual if it is not done by then."
    ),
]


_SECONDS = {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 0}}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "The tenant's submissions per minute (absent: no such limit).",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Submissions that fit right now.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "Seconds until the whole per-minute limit is free again.",
        "schema": {"type": "integer"},
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"model": JobView, "description": "Done within `Prefer: wait`."},
    202: {"description": "Accepted.", "headers": _RATE_HEADERS},
    400: {"model": ErrorBody, "description": "Unknown task, or a malformed form."},
    401: {"model": ErrorBody, "description": "No valid API key."},
    409: {"model": ErrorBody, "description": "Idempotency-Key used for a different request."},
    413: {"model": ErrorBody, "description": "Body or file too large."},
    415: {"model": ErrorBody, "description": "A file type the task cannot take."},
    422: {"model": ErrorBody, "description": "Invalid body or task parameters."},
    429: {
        "model": ErrorBody,
        "description": "Over the tenant's quota: `rate_limited` (submissions per minute) or "
        "`too_many_queued_jobs` (jobs waiting to start). Nothing was stored; retry after "
        "`Retry-After` seconds.",
        "headers": {"Retry-After": _SECONDS, **_RATE_HEADERS},
    },
    503: {"model": ErrorBody, "description": "Store or broker unreachable; retry later."},
}


def _submit_schema() -> dict[str, Any]:
    """The submit body's schema, with the tasks this server runs (jobrelay.task_catalog)."""
    schema = SubmitRequest.model_json_schema()
    schema["properties"]["task"]["enum"] = sorted(TASKS)
    return schema


_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _submit_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["task", "file"],
                    "properties": {
                        "task": {"type": "string", "enum": sorted(TASKS)},
                        "file": {"type": "string", "format": "binary"},
                        "params": {"type": "string", "description": "JSON object"},
                        "metadata": {"type": "string", "description": "JSON object"},
                        "deadline_seconds": {"type": "number"},
                        "webhook": {"type": "string", "description": "JSON WebhookSpec"},
                    },
                }
            },
        },
    }
}


def _wait_seconds(prefer: str | None) -> float:
    match = re.search(r"(?:^|[,;\s])wait=(\d+)", prefer or "")
    return min(float(match.group(1)), MAX_WAIT_SECONDS) if match else 0.0


def _answer(intake: Intake, accepted: Accepted, wait: float, response: Response) -> JobView:
    record = accepted.record
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait:g}"
    view = JobView.of(record, intake.settings.status_base_url)
    response.headers["Location"] = view.status_url
    if accepted.rate is not None:  # none on a replay: it was not charged
        response.headers.update(accepted.rate.headers())
    if record.status.terminal:
        response.status_code = 200
    else:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return view


@router.post("/v1/jobs", status_code=202, responses=_ERRORS, openapi_extra=_SUBMIT_BODY)
async def create_job(
    request: Request,
    response: Response,
    intake: IntakeDep,
    tenant: TenantDep,
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> JobView:
    """Accept a job (JSON, or multipart with a file) and answer at once: 202 with the job's
    `status_url`. The result arrives later there, on its event stream, or by webhook."""
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        if idempotency_key is None:
            await intake.quotas.refuse_if_full(tenant)
        record, fingerprint = await from_form(
            request, intake.settings, intake.jobs.files, intake.jobs.retention_seconds, tenant
        )
    else:
        record, fingerprint = await from_json(request, intake.settings, tenant)
    wait = _wait_seconds(prefer)
    accepted = await intake.submit(record, idempotency_key, fingerprint, wait)
    return _answer(intake, accepted, wait, response)


@router.post(
    "/api/process",
    status_code=202,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def process(
    request: Request,
    response: Response,
    intake: IntakeDep,
    tenant: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, str]:
    """The reference async client's route: a multipart `file`, run through the configured
    task; answers `{"id", "results_url"}`, and `results_url` answers like a status URL."""
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    else:
        await intake.quotas.refuse_if_full(tenant)
    settings = intake.settings
    record, fingerprint = await from_form(
        request,
        settings,
        intake.jobs.files,
        intake.jobs.retention_seconds,
        tenant,
        task=settings.compat_task,
        params=settings.compat_params,
    )
    accepted = await intake.accept(record, idempotency_key, fingerprint)
    job = accepted.record
    results_url = f"{settings.status_base_url.rstrip('/')}/api/results/{job.id}"
    response.headers["Location"] = results_url
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if accepted.rate is not None:
        response.headers.update(accepted.rate.headers())
    return {"id": job.id, "results_url": results_url}
