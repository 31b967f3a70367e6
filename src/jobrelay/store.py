"""Job records in the Dapr state store, with the ETag kept beside each one.

Every write is guarded: a new record is written first-write (insert only if absent), every
later write carries the ETag of the version it was computed from. Two writers racing on one
job cannot both win; the loser gets StaleRecord and rereads.

A record's contents (input text, params, result) and its upload are kept in the encrypted
`payloads` store (jobrelay/payloads.py); records come out of JobStore whole, and go in whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import grpc
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError
from dapr.clients.grpc._request import TransactionalStateOperation
from dapr.clients.grpc._state import Concurrency, Consistency, StateOptions

from jobrelay.constants import (
    JOB_KEY_PREFIX,
    MAX_JOB_LIFETIME_SECONDS,
    PAYLOADS_STORE,
    STATESTORE,
)
from jobrelay.contract import JobMessage, JobRecord, JobStatus, utcnow
from jobrelay.files import FileStore
from jobrelay.payloads import MissingContents, Payloads, stripped

log = logging.getLogger(__name__)

# Strong consistency: a claim must see the latest write, or two workers could both claim.
GUARDED = StateOptions(concurrency=Concurrency.first_write, consistency=Consistency.strong)
# A finished job's contents outlive its record by this much, so the record, whose TTL a
# later note (a webhook delivery) restarts, never names contents that expired first.
_CONTENTS_GRACE_SECONDS = 3600
# Reads of a record and its contents before giving up: each retry means a writer replaced
# the contents in between, so a few is far more than any real race needs.
_READ_TRIES = 5


class StaleRecord(Exception):
    """The record changed (or appeared) since it was read; reread and decide again."""


class KeyTaken(StaleRecord):
    """An insert found its key already there."""


@dataclass(frozen=True, slots=True)
class Versioned:
    record: JobRecord
    etag: str


def job_key(job_id: str) -> str:
    return f"{JOB_KEY_PREFIX}{job_id}"


def is_etag_conflict(exc: Exception) -> bool:
    """daprd answers ABORTED on an ETag mismatch, including a first-write that finds the key
    taken. The async SDK wraps save_state's gRPC error in DaprInternalError and raises the
    transaction API's as a DaprGrpcError (a grpc.RpcError)."""
    cause = exc.__cause__ if isinstance(exc, DaprInternalError) else exc
    return isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.ABORTED


async def insert(
    dapr: DaprClient, key: str, value: str, ttl_seconds: int, store: str = STATESTORE
) -> None:
    """Write `key` only if it is absent; KeyTaken if it is there.

    A first-write save without an ETag is Dapr's insert-if-absent, but stores refuse a taken
    key differently (Redis answers a generic error, not ABORTED), so any refusal is checked
    by reading the key: there means taken, absent means the write really failed.
    """
    try:
        await dapr.save_state(
            store, key, value, options=GUARDED, state_metadata={"ttlInSeconds": str(ttl_seconds)}
        )
    except DaprInternalError as exc:
        if is_etag_conflict(exc) or (await dapr.get_state(store, key)).data:
            raise KeyTaken(key) from exc
        raise


async def swap(
    dapr: DaprClient, store: str, key: str, data: str, etag: str | None, ttl_seconds: int
) -> bool:
    """Compare-and-swap: write `data` if `key` is still at `etag` (still absent when None);
    False if another writer came first, and the caller rereads and decides again."""
    try:
        if etag is None:
            await insert(dapr, key, data, ttl_seconds, store)
        else:
            await dapr.save_state(
                store,
                key,
                data,
                etag=etag,
                options=GUARDED,
                state_metadata={"ttlInSeconds": str(ttl_seconds)},
            )
    except KeyTaken:
        return False
    except DaprInternalError as exc:
        if is_etag_conflict(exc):
            return False
        raise
    return True


def lifetime_seconds(deadline: datetime | None, retention_seconds: int) -> int:
    """How long things that live with a queued job (its file, its idempotency key) must last."""
    if deadline is None:
        return MAX_JOB_LIFETIME_SECONDS + retention_seconds
    return max(int((deadline - utcnow()).total_seconds()), 0) + retention_seconds


class JobRecords(Protocol):
    """What the services need of a job store; JobStore is the one backed by Dapr."""

    async def get(self, job_id: str) -> Versioned | None: ...
    async def create(self, record: JobRecord) -> None: ...
    async def replace(self, record: JobRecord, etag: str) -> None: ...
    async def note(self, record: JobRecord, etag: str) -> None: ...


class JobStore:
    def __init__(
        self,
        dapr: DaprClient,
        retention_seconds: int,
        store_name: str = STATESTORE,
        payloads_store: str = PAYLOADS_STORE,
    ) -> None:
        self._dapr = dapr
        self._store = store_name
        self.retention_seconds = retention_seconds
        self.files = FileStore(dapr, payloads_store)
        self._payloads = Payloads(dapr, payloads_store)

    async def get(self, job_id: str) -> Versioned | None:
        for _ in range(_READ_TRIES):
            resp = await self._dapr.get_state(self._store, job_key(job_id))
            if not resp.data:
                return None
            record = JobRecord.model_validate_json(resp.data)
            try:
                return Versioned(await self._payloads.open(record), resp.etag)
            except MissingContents:
                # A writer replaced the contents this version names (and deleted them) between
                # the two reads: the record read again names the new ones.
                continue
        raise MissingContents(f"job {job_id}: the contents its record names are gone")

    async def filled(self, record: JobRecord) -> JobRecord:
        """`record`, from a job event, with its job's contents read from the store.

        Events carry no contents (jobrelay.messages); the input and params never change, and
        the result is taken only from the very version the event announces.
        """
        versioned = await self.get(record.id)
        if versioned is None:
            return record
        current = versioned.record
        same = current.seq == record.seq
        return record.model_copy(
            update={
                "input": record.input.model_copy(update={"text": current.input.text}),
                "params": current.params,
                "result": current.result if same else record.result,
            }
        )

    async def create(self, record: JobRecord) -> None:
        """Insert a new record; KeyTaken if the id is taken."""
        stored = await self._seal(record)
        try:
            await insert(self._dapr, job_key(record.id), stored.model_dump_json(), -1, self._store)
        except BaseException:
            await self._discard(stored)
            raise

    async def create_and_publish(self, record: JobRecord, message: JobMessage) -> None:
        """Store a new record and publish `message` on `jobs`, as one commit.

        Through the state store's transactional outbox (components/*/statestore.yaml): an
        outbox projection shapes the published message, so the broker carries the small
        claim check rather than the record. The id is a fresh uuid4, so an upsert cannot
        overwrite another job. The contents go first, outside the transaction: should the
        commit fail, they are deleted, or expire unnamed.
        """
        stored = await self._seal(record)
        key = job_key(record.id)
        # Only the projection carries metadata: daprd copies the stored operation's metadata
        # into the published CloudEvent as attributes, and the record needs none (no TTL
        # while it is live is the store's default).
        try:
            await self._dapr.execute_state_transaction(
                self._store,
                [
                    TransactionalStateOperation(
                        key,
                        message.model_dump_json(),
                        metadata={"outbox.projection": "true", "contentType": "application/json"},
                    ),
                    TransactionalStateOperation(key, stored.model_dump_json()),
                ],
            )
        except BaseException:
            await self._discard(stored)
            raise

    async def replace(self, record: JobRecord, etag: str) -> None:
        """Overwrite the version `etag` names; StaleRecord if another write came first.

        A record that becomes terminal takes its uploaded file with it: only a worker ever
        reads the file, and no worker will run a finished job again.
        """
        # Contents change only on the way to terminal (a result; retention starts) or back
        # to queued (a retry or a replay; the live lifetime again), so only then are they
        # written again: a claim, the hot path, writes the record alone.
        reseal = record.status.terminal or record.status is JobStatus.QUEUED
        await self._write(record, etag, reseal=reseal)
        if record.status.terminal and record.input.file is not None:
            await self.files.delete(record.input.file)

    async def note(self, record: JobRecord, etag: str) -> None:
        """Write a change that is not a status change (a webhook delivery, say)."""
        await self._write(record, etag, reseal=False)

    async def delete(self, job_id: str) -> None:
        await self._dapr.delete_state(self._store, job_key(job_id))

    async def _write(self, record: JobRecord, etag: str, reseal: bool) -> None:
        # Terminal records expire after the retention period; live ones never do, since a
        # queued job may wait behind a long backlog.
        ttl = self.retention_seconds if record.status.terminal else -1
        before = record.contents
        if reseal or before is None:
            stored = await self._seal(record)
        else:
            stored = stripped(record, before)
        try:
            await self._dapr.save_state(
                self._store,
                job_key(record.id),
                stored.model_dump_json(),
                etag=etag,
                options=GUARDED,
                state_metadata={"ttlInSeconds": str(ttl), "contentType": "application/json"},
            )
        except DaprInternalError as exc:
            if stored.contents != before:
                await self._discard(stored)
            if is_etag_conflict(exc):
                raise StaleRecord(record.id) from exc
            raise
        if before is not None and stored.contents != before:
            await self._payloads.discard(before)

    async def _seal(self, record: JobRecord) -> JobRecord:
        if record.status.terminal:
            ttl = self.retention_seconds + _CONTENTS_GRACE_SECONDS
        else:
            ttl = lifetime_seconds(record.deadline, self.retention_seconds)
        return await self._payloads.seal(record, ttl)

    async def _discard(self, stored: JobRecord) -> None:
        if stored.contents is not None:
            await self._payloads.discard(stored.contents)
