"""Each tenant's dead-lettered jobs, kept in the state store for the admin routes.

Redis has no query API through Dapr (it needs RediSearch), so a tenant's jobs that went to
`jobs-dead` are listed under one key per tenant, newest last; the oldest fall off past a
bound. One key per tenant, so one tenant's dead letters never push another's out.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from jobrelay import keys
from jobrelay.constants import DEAD_LETTER_INDEX_SIZE
from jobrelay.state import State, Write


class DeadLetters:
    def __init__(self, state: State) -> None:
        self._state = state

    async def ids(self, tenant: str) -> list[str]:
        """The tenant's dead-lettered job ids, oldest first."""
        item = await self._state.get(keys.dead_letters(tenant))
        ids: list[str] = json.loads(item.data) if item else []
        return ids

    async def add(self, tenant: str, job_id: str) -> None:
        await self._change(tenant, lambda ids: [*[i for i in ids if i != job_id], job_id])

    async def remove(self, tenant: str, job_ids: set[str]) -> None:
        await self._change(tenant, lambda ids: [i for i in ids if i not in job_ids])

    async def _change(self, tenant: str, change: Callable[[list[str]], list[str]]) -> None:
        def write(data: bytes | None) -> Write | None:
            ids = json.loads(data) if data else []
            changed = change(ids)[-DEAD_LETTER_INDEX_SIZE:]
            return None if changed == ids else Write(json.dumps(changed))

        await self._state.update(keys.dead_letters(tenant), write)
