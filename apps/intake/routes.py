from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError

from apps.intake.settings import IntakeSettings, get_settings
from apps.intake.submission import submit
from jobrelay.constants import RETRY_AFTER_SECONDS
from jobrelay.contract import JobRecord, JobView, SubmitRequest
from jobrelay.errors import ApiError, ErrorBody
from jobrelay.service import DaprDep, StoreDep
from jobrelay.tasks import UnknownTask, parse_params

router = APIRouter(prefix="/v1", tags=["jobs"])
SettingsDep = Annotated[IntakeSettings, Depends(get_settings)]

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "Unknown task."},
    422: {"model": ErrorBody, "description": "Invalid body or task parameters."},
    503: {"model": ErrorBody, "description": "Store or broker unreachable; retry later."},
}


@router.post("/jobs", status_code=202, responses=_ERRORS)
async def create_job(
    body: SubmitRequest, response: Response, dapr: DaprDep, store: StoreDep, settings: SettingsDep
) -> JobView:
    """Accept a job and answer at once; the result arrives later at `status_url`."""
    try:
        params = parse_params(body.task, body.params)
    except UnknownTask as exc:
        raise ApiError(400, "unknown_task", str(exc)) from exc
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ApiError(422, "invalid_params", f"params for {body.task!r}: {detail}") from exc
    record = JobRecord.new(
        body.task,
        body.input,
        params.model_dump(),
        body.metadata,
        body.deadline_seconds,
    )
    await submit(dapr, store, record)
    view = JobView.of(record, settings.status_base_url)
    response.headers["Location"] = view.status_url
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return view
