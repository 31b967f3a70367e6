"""Job records in the state store: one key per job, holding all of it.

A record holds the job's status, times and ids together with what the client sent and what
the model answered, in the state store daprd encrypts (components/*/statestore.yaml): one
read gives a poll everything, and one guarded write moves a job on.

Every write is guarded (jobrelay.state): a new record is inserted first-write, every later
write carries the ETag of the version it was computed from, so a duplicate delivery, a
takeover, a cancel or a late result can never overwrite a newer state.

A job's key is written by exactly one of two parties first: intake storing the record after
publishing its message, or a worker that received the message, waited its grace for the
record, and `fence`s the key with a tombstone. Whichever comes first wins, so a job is either
accepted (its record stored; intake answers 202) or never (intake answers 503), never half.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from jobrelay import keys
from jobrelay.conflicts import Conflict, KeyTaken
from jobrelay.constants import FENCE_TTL_SECONDS, MAX_JOB_LIFETIME_SECONDS
from jobrelay.contract import JobRecord, JobStatus, utcnow
from jobrelay.files import FileStore
from jobrelay.state import State, Write

log = logging.getLogger(__name__)

# What a fenced key holds: a job whose record intake never stored. Not a record: every read
# of it is "no such job", and no write can follow it but its expiry.
_TOMBSTONE = b'{"never_accepted":true}'


class StaleRecord(Exception):
    """The record changed since it was read; read again and decide again."""


class Fenced(Exception):
    """The job's key holds a tombstone: a worker gave up waiting for the record, so intake
    must not store it (the job was never accepted)."""


class _Status(BaseModel):
    """A record read for its status alone."""

    model_config = ConfigDict(extra="ignore")
    status: JobStatus


class Versioned(NamedTuple):
    """A job record as read, with the ETag a write of it must name."""

    record: JobRecord
    etag: str


@dataclass(frozen=True, slots=True)
class Updated:
    record: JobRecord  # as it now stands
    written: bool  # whether this update wrote it (False: the change left it as it was)


Change = Callable[[JobRecord], JobRecord | None]


def lifetime_seconds(deadline: datetime | None, retention_seconds: int) -> int:
    """How long things that live with a queued job (its file, its idempotency key) must last."""
    if deadline is None:
        return MAX_JOB_LIFETIME_SECONDS + retention_seconds
    return max(int((deadline - utcnow()).total_seconds()), 0) + retention_seconds


class JobStore:
    def __init__(self, state: State, retention_seconds: int) -> None:
        self._state = state
        self.retention_seconds = retention_seconds
        self.files = FileStore(state)

    async def get(self, job_id: str) -> Versioned | None:
        item = await self._state.get(keys.job(job_id))
        if item is None or item.data == _TOMBSTONE:
            return None
        return Versioned(JobRecord.model_validate_json(item.data), item.etag)

    async def get_many(self, job_ids: list[str]) -> dict[str, JobRecord]:
        """The records of `job_ids` that exist and could be read, in one call."""
        items = await self._state.get_many(keys.job(j) for j in job_ids)
        return {
            keys.job_id_of(key): JobRecord.model_validate_json(item.data)
            for key, item in items.items()
            if item is not None and item.data != _TOMBSTONE
        }

    async def statuses(self, job_ids: list[str]) -> dict[str, JobStatus | None]:
        """The status of each job in `job_ids`, in one call: None for a job with no record
        (or a fenced one); a job whose record could not be read is left out."""
        items = await self._state.get_many(keys.job(j) for j in job_ids)
        return {
            keys.job_id_of(key): None
            if item is None or item.data == _TOMBSTONE
            else _Status.model_validate_json(item.data).status
            for key, item in items.items()
        }

    async def create(self, record: JobRecord) -> None:
        """Insert a new record; Fenced if a worker fenced its key first."""
        try:
            await self._state.insert(
                keys.job(record.id), record.model_dump_json(), self._ttl(record)
            )
        except KeyTaken as exc:
            raise Fenced(record.id) from exc

    async def put_new(self, record: JobRecord) -> None:
        """Store a record whose key nobody else can have written yet (a batch line's first
        fan-out, apps/intake/batches): unguarded, so many at once coalesce into bulk saves."""
        await self._state.put(keys.job(record.id), record.model_dump_json(), self._ttl(record))

    async def replace(self, record: JobRecord, etag: str) -> None:
        """Overwrite the version `etag` names; StaleRecord if another write came first.

        A record that becomes terminal takes its uploaded file with it: only a worker reads
        the file, and no worker will run a finished job again. (The chunks expire anyway;
        deleting them frees up to the upload limit per job days earlier.)
        """
        try:
            await self._state.replace(
                keys.job(record.id), record.model_dump_json(), etag, self._ttl(record)
            )
        except Conflict as exc:
            raise StaleRecord(record.id) from exc
        if record.status.terminal and record.input.file is not None:
            await self.files.delete(record.input.file)

    async def update(self, job_id: str, change: Change) -> Updated | None:
        """Apply `change` to the job's current record until a guarded write of its answer goes
        through (jobrelay.state: the one retry loop). `change` answers None to leave the
        record as it is, and may run once per lost race. None: no such job."""

        # The records `change` saw and made on its last run, so nothing is parsed twice.
        seen: JobRecord | None = None
        made: JobRecord | None = None

        def on_bytes(data: bytes | None) -> Write | None:
            nonlocal seen, made
            seen = made = None
            if data is None or data == _TOMBSTONE:
                return None
            seen = JobRecord.model_validate_json(data)
            made = change(seen)
            return None if made is None else Write(made.model_dump_json(), self._ttl(made))

        _, written = await self._state.update(keys.job(job_id), on_bytes)
        record = made if written else seen
        if record is None:
            return None
        if written and record.status.terminal and record.input.file is not None:
            await self.files.delete(record.input.file)
        return Updated(record, written)

    async def fence(self, job_id: str) -> Versioned | None:
        """Make sure the job's record can never be stored from now on, unless it already is:
        the record, if intake stored it first; None once the tombstone is in."""
        try:
            await self._state.insert(keys.job(job_id), _TOMBSTONE, FENCE_TTL_SECONDS)
        except KeyTaken:
            return await self.get(job_id)
        log.warning("job_id=%s fenced: its record never arrived; the job was not accepted", job_id)
        return None

    def ttl(self, record: JobRecord) -> int:
        """How long `record`, written now, lives (and what lives with it: its deltas)."""
        return self._ttl(record)

    def _ttl(self, record: JobRecord) -> int:
        """Terminal records expire after the retention period; live ones once the job could
        no longer run (its deadline, or the longest life a job has), plus the retention, so
        a job whose message was lost does not stay queued for ever."""
        if record.status.terminal:
            return self.retention_seconds
        end = record.deadline or record.created_at + timedelta(seconds=MAX_JOB_LIFETIME_SECONDS)
        return max(int((end - utcnow()).total_seconds()), 0) + self.retention_seconds
