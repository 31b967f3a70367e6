"""Job records in the Dapr state store, with the ETag kept beside each one.

Every write is guarded: a new record is written first-write (insert only if absent), every
later write carries the ETag of the version it was computed from. Two writers racing on one
job cannot both win; the loser gets StaleRecord and rereads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import grpc
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError
from dapr.clients.grpc._state import Concurrency, Consistency, StateOptions

from jobrelay.constants import JOB_KEY_PREFIX, RESULT_TTL_SECONDS, STATESTORE
from jobrelay.contract import JobRecord

log = logging.getLogger(__name__)

# Strong consistency: a claim must see the latest write, or two workers could both claim.
_FIRST_WRITE = StateOptions(concurrency=Concurrency.first_write, consistency=Consistency.strong)


class StaleRecord(Exception):
    """The record changed (or appeared) since it was read; reread and decide again."""


@dataclass(frozen=True, slots=True)
class Versioned:
    record: JobRecord
    etag: str


def job_key(job_id: str) -> str:
    return f"{JOB_KEY_PREFIX}{job_id}"


def _is_etag_conflict(exc: DaprInternalError) -> bool:
    # The async SDK wraps the gRPC error of save_state; daprd answers ABORTED on an ETag
    # mismatch, including a first-write that finds the key already taken.
    cause = exc.__cause__
    return isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.ABORTED


class JobRecords(Protocol):
    """What the services need of a job store; JobStore is the one backed by Dapr."""

    async def get(self, job_id: str) -> Versioned | None: ...
    async def create(self, record: JobRecord) -> None: ...
    async def replace(self, record: JobRecord, etag: str) -> None: ...


class JobStore:
    def __init__(self, dapr: DaprClient, store_name: str = STATESTORE) -> None:
        self._dapr = dapr
        self._store = store_name

    async def get(self, job_id: str) -> Versioned | None:
        resp = await self._dapr.get_state(self._store, job_key(job_id))
        if not resp.data:
            return None
        return Versioned(JobRecord.model_validate_json(resp.data), resp.etag)

    async def create(self, record: JobRecord) -> None:
        """Insert a new record; StaleRecord if the id is taken."""
        await self._write(record, etag=None, options=_FIRST_WRITE)

    async def replace(self, record: JobRecord, etag: str) -> None:
        """Overwrite the version `etag` names; StaleRecord if another write came first."""
        await self._write(record, etag=etag, options=_FIRST_WRITE)

    async def _write(self, record: JobRecord, etag: str | None, options: StateOptions) -> None:
        # Terminal records expire after a retention period; live ones never do, since a queued
        # job may wait behind a long backlog.
        ttl = RESULT_TTL_SECONDS if record.status.terminal else -1
        try:
            await self._dapr.save_state(
                self._store,
                job_key(record.id),
                record.model_dump_json(),
                etag=etag,
                options=options,
                state_metadata={"ttlInSeconds": str(ttl), "contentType": "application/json"},
            )
        except DaprInternalError as exc:
            if _is_etag_conflict(exc):
                raise StaleRecord(record.id) from exc
            raise
