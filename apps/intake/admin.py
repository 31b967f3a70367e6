"""Operators' view of dead letters: the jobs that went to `jobs-dead`, and their replay.

Operators only (JOBRELAY_INTAKE_OPERATORS): a replay spends the model's budget again, so a
tenant may not replay its own failing jobs at will. An operator names the tenant whose list
it reads; each tenant's list is kept apart (jobrelay.dead_letters), and read a page at a
time in one bulk read. A replay is charged to the job's tenant's quota like a submit.

A replayed job goes back to `queued` with its history kept, and is published again; intake
does it because intake is the one app that publishes `jobs`.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from apps.intake.deps import IntakeDep, SettingsDep
from apps.intake.quotas import QuotaExceeded, Submit
from apps.intake.submission import Intake
from jobrelay.auth import TenantDep
from jobrelay.contract import (
    ErrorBody,
    IllegalTransition,
    JobMessage,
    JobRecord,
    JobStatus,
    JobView,
    utcnow,
)
from jobrelay.errors import ApiError

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/admin/dead-letters",
    tags=["admin"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)

_MAX_PAGE = 100


class DeadLetterPage(BaseModel):
    jobs: list[JobView] = Field(description="Dead-lettered jobs of the tenant, newest first.")
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null: done.")


class Replayed(BaseModel):
    replayed: list[str] = Field(description="Ids queued again.")
    skipped: dict[str, str] = Field(description="Ids not replayed, and why.")


async def operator(caller: TenantDep, settings: SettingsDep) -> str:
    """The caller, if it is one of the operators; 403 otherwise."""
    if caller not in settings.operators:
        raise ApiError(403, "operator_only", "the dead-letter routes are for operators only")
    return caller


Operator = Annotated[str, Depends(operator)]
TenantQuery = Annotated[str, Query(min_length=1, max_length=200, description="Whose jobs.")]


@router.get("")
async def list_dead_letters(
    intake: IntakeDep,
    _: Operator,
    tenant: TenantQuery,
    limit: Annotated[int, Query(ge=1, le=_MAX_PAGE)] = 50,
    cursor: Annotated[int, Query(ge=0, description="From a page's `next_cursor`.")] = 0,
) -> DeadLetterPage:
    """One page of the tenant's jobs that exhausted their retries, newest first, as they
    are now; a job that has run again since is no longer shown."""
    newest_first = list(reversed(await intake.dead_letters.ids(tenant)))
    page = newest_first[cursor : cursor + limit]
    records = await intake.jobs.get_many(page)
    base = intake.settings.status_base_url
    jobs = [
        JobView.of(records[j], base)
        for j in page
        if j in records and records[j].status is JobStatus.FAILED
    ]
    more = cursor + limit < len(newest_first)
    return DeadLetterPage(jobs=jobs, next_cursor=cursor + limit if more else None)


@router.post("/{job_id}/replay", status_code=202, responses={404: {"model": ErrorBody}})
async def replay_one(job_id: str, intake: IntakeDep, _: Operator, tenant: TenantQuery) -> JobView:
    """Queue one of the tenant's dead-lettered jobs again."""
    dead = intake.dead_letters
    if job_id not in set(await dead.ids(tenant)):
        raise ApiError(404, "not_dead_lettered", f"job {job_id} is not in the dead-letter list")
    replayed = await _replay(intake, tenant, job_id)
    if isinstance(replayed, str):
        raise ApiError(409, "not_replayable", replayed)
    await dead.remove(tenant, {job_id})
    return JobView.of(replayed, intake.settings.status_base_url)


@router.post("/replay", status_code=202)
async def replay_all(intake: IntakeDep, _: Operator, tenant: TenantQuery) -> Replayed:
    """Queue every one of the tenant's dead-lettered jobs again (each charged to its quota;
    those over it are skipped and stay listed)."""
    dead = intake.dead_letters
    done: list[str] = []
    skipped: dict[str, str] = {}
    for job_id in await dead.ids(tenant):
        replayed = await _replay(intake, tenant, job_id)
        if isinstance(replayed, str):
            skipped[job_id] = replayed
        else:
            done.append(job_id)
    await dead.remove(tenant, set(done) | {i for i, why in skipped.items() if why == "gone"})
    return Replayed(replayed=done, skipped=skipped)


async def _replay(intake: Intake, tenant: str, job_id: str) -> JobRecord | str:
    """The job, queued again; else why not."""
    current = await intake.jobs.get(job_id)
    if current is None or current.record.tenant != tenant:
        return "gone"
    try:
        await intake.quotas.admit(Submit(tenant, job_id))
    except QuotaExceeded as exc:
        return f"{exc.code}: {exc.message}"

    def requeued(record: JobRecord) -> JobRecord | None:
        try:
            return record.replayed()
        except IllegalTransition:
            return None

    updated = await intake.jobs.update(job_id, requeued)
    if updated is None:
        return "gone"
    if updated.record.status is not JobStatus.QUEUED:
        return f"the job is {updated.record.status}, not failed"
    # Published after the guarded write: should intake die in between, the job stays queued
    # in the dead-letter list, and a second replay publishes it (requeued is idempotent).
    message = JobMessage(job_id=job_id, task=updated.record.task, sent_at=utcnow())
    await intake.publish(message, updated.record)
    log.info("job_id=%s task=%s status=queued replayed by an operator", job_id, updated.record.task)
    await intake.events.changed(updated.record)
    return updated.record
