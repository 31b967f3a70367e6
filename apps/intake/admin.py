"""Operators' view of dead letters: the jobs that went to `jobs-dead`, and their replay.

A replayed job goes back to `queued` with its history kept, and is published again through
the outbox; intake does it because intake is the one app that publishes `jobs`.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from apps.intake.settings import IntakeSettings, get_settings
from jobrelay.auth import TenantDep
from jobrelay.constants import JOBS_TOPIC, PUBSUB
from jobrelay.contract import IllegalTransition, JobMessage, JobStatus, JobView
from jobrelay.dead_letters import DeadLetters
from jobrelay.errors import ApiError, ErrorBody
from jobrelay.messages import publish_job_event
from jobrelay.service import DaprDep, StoreDep
from jobrelay.store import JobStore, StaleRecord

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin/dead-letters", tags=["admin"])
SettingsDep = Annotated[IntakeSettings, Depends(get_settings)]

# One page of the list; the index keeps the newest 10,000.
_PAGE = 100


class DeadLetterList(BaseModel):
    jobs: list[JobView] = Field(description="Dead-lettered jobs, newest first.")
    total: int = Field(description="How many the list holds.")


class Replayed(BaseModel):
    replayed: list[str] = Field(description="Ids queued again.")
    skipped: dict[str, str] = Field(description="Ids not replayed, and why.")


def get_dead_letters(dapr: DaprDep) -> DeadLetters:
    return DeadLetters(dapr)


DeadLettersDep = Annotated[DeadLetters, Depends(get_dead_letters)]


@router.get("")
async def list_dead_letters(
    dead: DeadLettersDep, store: StoreDep, settings: SettingsDep, tenant: TenantDep
) -> DeadLetterList:
    """The caller's jobs that exhausted their retries (newest first), as they are now."""
    jobs = []
    # One shared index, read per tenant: each caller sees (and counts) only its own jobs.
    for job_id in reversed(await dead.ids()):
        versioned = await store.get(job_id)
        if versioned is not None and versioned.record.tenant == tenant:
            jobs.append(JobView.of(versioned.record, settings.status_base_url))
    return DeadLetterList(jobs=jobs[:_PAGE], total=len(jobs))


@router.post(
    "/{job_id}/replay",
    status_code=202,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def replay_one(
    job_id: str,
    request: Request,
    dead: DeadLettersDep,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> JobView:
    """Queue one of the caller's dead-lettered jobs again."""
    if job_id not in set(await dead.ids()) or not await _owned(store, job_id, tenant):
        raise ApiError(404, "not_dead_lettered", f"job {job_id} is not in the dead-letter list")
    reason = await _replay(store, job_id, request)
    if reason is not None:
        raise ApiError(409, "not_replayable", reason)
    await dead.remove({job_id})
    versioned = await store.get(job_id)
    assert versioned is not None
    return JobView.of(versioned.record, settings.status_base_url)


@router.post("/replay", status_code=202)
async def replay_all(
    request: Request, dead: DeadLettersDep, store: StoreDep, tenant: TenantDep
) -> Replayed:
    """Queue every one of the caller's dead-lettered jobs again."""
    done, skipped = [], {}
    for job_id in await dead.ids():
        versioned = await store.get(job_id)
        if versioned is not None and versioned.record.tenant != tenant:
            continue  # another tenant's; a gone one is dropped from the list below
        reason = await _replay(store, job_id, request)
        if reason is None:
            done.append(job_id)
        else:
            skipped[job_id] = reason
    await dead.remove(set(done) | {i for i, why in skipped.items() if why == "gone"})
    return Replayed(replayed=done, skipped=skipped)


async def _owned(store: JobStore, job_id: str, tenant: str) -> bool:
    versioned = await store.get(job_id)
    return versioned is not None and versioned.record.tenant == tenant


async def _replay(store: JobStore, job_id: str, request: Request) -> str | None:
    """None once queued again; else why not."""
    for _ in range(3):
        versioned = await store.get(job_id)
        if versioned is None:
            return "gone"
        try:
            queued = versioned.record.replayed()
        except IllegalTransition:
            return f"the job is {versioned.record.status}, not failed"
        try:
            await store.replace(queued, versioned.etag)
        except StaleRecord:
            continue
        # Published after the guarded write, not through the outbox: the outbox cannot take
        # an ETag (jobrelay.store.create_and_publish). Should intake die in between, the job
        # stays queued in the dead-letter list, and a second replay publishes it.
        message = JobMessage(job_id=job_id, task=queued.task)
        await request.app.state.dapr.publish_event(
            PUBSUB, JOBS_TOPIC, message.model_dump_json(), data_content_type="application/json"
        )
        log.info(
            "job_id=%s task=%s status=%s replayed by an operator",
            job_id,
            queued.task,
            JobStatus.QUEUED,
        )
        await publish_job_event(request.app.state.dapr, queued)
        return None
    return "the job kept changing; try again"
