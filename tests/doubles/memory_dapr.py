"""A FAKE of the Dapr client's state and publish calls, in memory, for unit tests.

It keeps Dapr's rules that jobrelay's state layer depends on: a first-write save without an
ETag fails on a taken key, an ETag-checked save or delete fails once the key has moved on
(both as daprd answers them: ABORTED, wrapped the way the async SDK wraps them), ETags
change on every write, and a bulk read reports absent keys with empty data. TTLs are
recorded, not enforced. Every call yields to the event loop, as a real call would, so
racing coroutines interleave. Like daprd, it refuses a bulk call whose request or answer
is bigger than its gRPC message limit (4 MiB by default; a test may lower it). Nothing here
stands in for daprd in an integration test.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import anyio
import grpc
from dapr.clients.exceptions import DaprInternalError

from jobrelay.constants import STATESTORE


class _Aborted(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.ABORTED

    def details(self) -> str:
        return "possible etag mismatch"


class _TooBig(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self) -> str:
        return "grpc: trying to send message larger than max"


def _conflict(key: str) -> DaprInternalError:
    error = DaprInternalError(f"etag mismatch on {key}")
    error.__cause__ = _Aborted()
    return error


@dataclass
class _Read:
    data: bytes
    etag: str


@dataclass
class _BulkItem:
    key: str
    data: bytes
    etag: str
    error: str = ""


@dataclass
class _Bulk:
    items: list[_BulkItem]


@dataclass
class _Row:
    value: bytes
    version: int
    ttl: str | None


@dataclass
class MemoryDapr:
    rows: dict[tuple[str, str], _Row] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)  # per method, to count round trips
    published: list[tuple[str, str, Any]] = field(default_factory=list)
    fail_next: list[str] = field(default_factory=list)  # methods whose next call fails
    max_message_bytes: int = 4 * 1024 * 1024  # daprd's default max body size

    def _fits(self, values: list[bytes]) -> None:
        if sum(len(v) for v in values) > self.max_message_bytes:
            raise _TooBig()

    async def _call(self, method: str) -> None:
        self.calls[method] += 1
        await anyio.lowlevel.checkpoint()
        if method in self.fail_next:
            self.fail_next.remove(method)
            raise DaprInternalError(f"{method}: the store is unreachable (test fault)")

    async def get_state(self, store: str, key: str, **_: Any) -> _Read:
        await self._call("get_state")
        row = self.rows.get((store, key))
        return _Read(row.value, str(row.version)) if row else _Read(b"", "")

    async def get_bulk_state(self, store: str, keys: list[str], **_: Any) -> _Bulk:
        await self._call("get_bulk_state")
        items = []
        for key in keys:
            row = self.rows.get((store, key))
            items.append(_BulkItem(key, row.value if row else b"", str(row.version) if row else ""))
        self._fits([item.data for item in items])
        return _Bulk(items)

    async def save_state(
        self,
        store: str,
        key: str,
        value: str | bytes,
        etag: str | None = None,
        options: Any = None,
        state_metadata: dict[str, str] | None = None,
        **_: Any,
    ) -> None:
        await self._call("save_state")
        self._write(store, key, value, etag, options, state_metadata)

    def _write(
        self,
        store: str,
        key: str,
        value: str | bytes,
        etag: str | None,
        options: Any,
        state_metadata: dict[str, str] | None,
    ) -> None:
        row = self.rows.get((store, key))
        guarded = options is not None
        if guarded and etag is None and row is not None:
            raise _conflict(key)  # first-write insert of a taken key
        if etag is not None and (row is None or str(row.version) != etag):
            raise _conflict(key)
        data = value.encode() if isinstance(value, str) else value
        ttl = (state_metadata or {}).get("ttlInSeconds")
        self.rows[(store, key)] = _Row(data, (row.version if row else 0) + 1, ttl)

    async def save_bulk_state(self, store: str, states: list[Any], **_: Any) -> None:
        """Each item its own write, as daprd does for a store without bulk writes: the items
        that can go in do; the call fails if any could not, without saying which."""
        await self._call("save_bulk_state")
        self._fits([v.encode() if isinstance(v, str) else v for v in (i.value for i in states)])
        failed: DaprInternalError | None = None
        for item in states:
            try:
                self._write(store, item.key, item.value, item.etag, item.options, item.metadata)
            except DaprInternalError as exc:
                failed = exc
        if failed is not None:
            raise failed

    async def delete_state(self, store: str, key: str, etag: str | None = None, **_: Any) -> None:
        await self._call("delete_state")
        row = self.rows.get((store, key))
        if etag is not None and (row is None or str(row.version) != etag):
            raise _conflict(key)
        self.rows.pop((store, key), None)

    async def publish_event(self, pubsub: str, topic: str, data: Any, **_: Any) -> None:
        await self._call("publish_event")
        self.published.append((pubsub, topic, data))

    async def publish_events(self, pubsub: str, topic: str, data: list[Any], **_: Any) -> Any:
        """A bulk publish that takes every entry (the SDK's answer: no failed entries)."""
        await self._call("publish_events")
        self.published += [(pubsub, topic, entry) for entry in data]
        return SimpleNamespace(failed_entries=[])

    # For arranging and for assertions.

    def put(self, key: str, value: str, store: str = STATESTORE) -> None:
        row = self.rows.get((store, key))
        self.rows[(store, key)] = _Row(value.encode(), (row.version if row else 0) + 1, None)

    def value(self, key: str, store: str = STATESTORE) -> Any:
        return json.loads(self.rows[(store, key)].value)

    def ttl(self, key: str, store: str = STATESTORE) -> str | None:
        return self.rows[(store, key)].ttl

    def has(self, key: str, store: str = STATESTORE) -> bool:
        return (store, key) in self.rows
