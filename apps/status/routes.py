from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from apps.status.settings import StatusSettings, get_settings
from jobrelay.constants import RETRY_AFTER_SECONDS
from jobrelay.contract import JobView
from jobrelay.errors import ApiError, ErrorBody
from jobrelay.service import StoreDep

router = APIRouter(prefix="/v1", tags=["jobs"])
SettingsDep = Annotated[StatusSettings, Depends(get_settings)]
# Ids are uuid4 hex. Anything else cannot name a job, so it is answered 404 like any unknown
# id (not 422: to a client both mean "no such job") without a store round trip.
_JOB_ID = re.compile(r"[0-9a-f]{32}")


@router.get(
    "/jobs/{job_id}",
    responses={
        202: {"model": JobView, "description": "Queued or running; poll again after Retry-After."},
        404: {"model": ErrorBody, "description": "No such job (or it expired)."},
        503: {"model": ErrorBody, "description": "Store unreachable; retry later."},
    },
)
async def get_job(
    job_id: str, response: Response, store: StoreDep, settings: SettingsDep
) -> JobView:
    """The job: 200 once terminal (whatever the outcome), 202 + Retry-After before."""
    versioned = await store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
    if versioned is None:
        raise ApiError(404, "job_not_found", f"no job with id {job_id}")
    record = versioned.record
    if not record.status.terminal:
        response.status_code = 202
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JobView.of(record, settings.public_base_url)
