"""The list of dead-lettered jobs, kept in the state store for the admin endpoints.

Redis has no query API through Dapr (it needs RediSearch), so jobs that went to `jobs-dead`
are listed under one key, newest last, ETag-guarded; the oldest fall off past a bound.
"""

from __future__ import annotations

import json

from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError

from jobrelay.constants import DEAD_LETTER_INDEX_KEY, DEAD_LETTER_INDEX_SIZE, STATESTORE
from jobrelay.store import GUARDED, KeyTaken, insert, is_etag_conflict

_TRIES = 10


class DeadLetters:
    def __init__(self, dapr: DaprClient, store: str = STATESTORE) -> None:
        self._dapr = dapr
        self._store = store

    async def ids(self) -> list[str]:
        resp = await self._dapr.get_state(self._store, DEAD_LETTER_INDEX_KEY)
        ids: list[str] = json.loads(resp.data) if resp.data else []
        return ids

    async def add(self, job_id: str) -> None:
        await self._change(lambda ids: [*[i for i in ids if i != job_id], job_id])

    async def remove(self, job_ids: set[str]) -> None:
        await self._change(lambda ids: [i for i in ids if i not in job_ids])

    async def _change(self, change: object) -> None:
        assert callable(change)
        for _ in range(_TRIES):
            resp = await self._dapr.get_state(self._store, DEAD_LETTER_INDEX_KEY)
            ids = json.loads(resp.data) if resp.data else []
            data = json.dumps(change(ids)[-DEAD_LETTER_INDEX_SIZE:])
            try:
                if not resp.data:
                    await insert(self._dapr, DEAD_LETTER_INDEX_KEY, data, -1, self._store)
                else:
                    await self._dapr.save_state(
                        self._store, DEAD_LETTER_INDEX_KEY, data, etag=resp.etag, options=GUARDED
                    )
                return
            except KeyTaken:
                continue
            except DaprInternalError as exc:
                if not is_etag_conflict(exc):
                    raise
        raise RuntimeError("the dead-letter list kept changing under this write")
