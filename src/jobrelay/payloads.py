"""A job's contents (input text, parameters, result) kept apart from its record, in the
`payloads` state store, which daprd encrypts (AES-GCM, with a key from the `jobrelay-keys`
secret store; components/*/payloads.yaml). Uploaded files live in the same store.

Why not encrypt the job records' own store: the record is written in a state transaction
through the store's outbox, and daprd 1.18 breaks both on an encrypted store. It formats each
transaction value with Go's `%v` before encrypting it, so `{"a":1}` reads back as
`[123 34 97 ...]`, and it encrypts the outbox projection too, so the `jobs` message would be
ciphertext (pkg/api/grpc, ExecuteStateTransaction). Plain saves and reads are encrypted and
decrypted properly. So the record keeps what routing, polling and leases need (status, times,
ids), and what a client sent and a model answered goes through plain writes to the
encrypted store, under a key the record names.

Contents change only when a job becomes terminal (a result arrives; retention starts) or
queued again (a retry or a replay: the live lifetime again). Each change goes to a fresh key,
written before the record that names it, so a record never names contents that are not
there, and a writer that loses its race on the record leaves the winner's contents alone.
"""

from __future__ import annotations

import logging
import secrets

from dapr.aio.clients import DaprClient

from jobrelay.constants import CONTENTS_KEY_PREFIX, PAYLOADS_STORE
from jobrelay.contract import JobContents, JobRecord
from jobrelay.errors import DAPR_ERRORS

log = logging.getLogger(__name__)


class MissingContents(Exception):
    """The record names contents the store no longer has (expired before their record)."""


def _new_key(job_id: str) -> str:
    return f"{CONTENTS_KEY_PREFIX}{job_id}:{secrets.token_hex(8)}"


def stripped(record: JobRecord, key: str | None) -> JobRecord:
    """`record` holding none of its contents: as stored (naming them at `key`), or as a job
    event carries it (`key` None: the event may outlive those contents)."""
    return record.model_copy(
        update={
            "contents": key,
            "input": record.input.model_copy(update={"text": None}),
            "params": {},
            "result": None,
        }
    )


class Payloads:
    def __init__(self, dapr: DaprClient, store: str = PAYLOADS_STORE) -> None:
        self._dapr = dapr
        self._store = store

    async def seal(self, record: JobRecord, ttl_seconds: int) -> JobRecord:
        """Store `record`'s contents under a fresh key; the record to store in its place."""
        key = _new_key(record.id)
        contents = JobContents(text=record.input.text, params=record.params, result=record.result)
        await self._dapr.save_state(
            self._store,
            key,
            contents.model_dump_json(),
            state_metadata={"ttlInSeconds": str(ttl_seconds), "contentType": "application/json"},
        )
        return stripped(record, key)

    async def open(self, record: JobRecord) -> JobRecord:
        """`record` with its contents back in place. A record stored whole (before contents
        were kept apart, or written by hand) is returned as it is."""
        if record.contents is None:
            return record
        resp = await self._dapr.get_state(self._store, record.contents)
        if not resp.data:
            raise MissingContents(f"job {record.id}: contents {record.contents} are gone")
        contents = JobContents.model_validate_json(resp.data)
        return record.model_copy(
            update={
                "input": record.input.model_copy(update={"text": contents.text}),
                "params": contents.params,
                "result": contents.result,
            }
        )

    async def discard(self, key: str) -> None:
        """Best effort: contents left behind still expire with their TTL."""
        try:
            await self._dapr.delete_state(self._store, key)
        except DAPR_ERRORS as exc:
            log.warning("contents %s not deleted (%s); they expire with their TTL", key, exc)
