"""The one owner of every call to the Dapr state API.

Every other module reads and writes through `State`, so the rules below hold everywhere:

- A guarded write carries the ETag of the version it was computed from; `insert` (no ETag,
  first-write) succeeds only if the key is absent. Two writers racing on a key cannot both
  win: the loser gets `Conflict` and decides again on a fresh read.
- `update` is the one read-modify-write loop, with the one retry bound and backoff. A change
  that finds nothing to do returns None and nothing is written.
- A TTL is sent only where a key must expire: a key written with no TTL keeps the one it has
  on Redis (no `PERSIST`, which `ttlInSeconds: -1` would cost on every write).
- Strong consistency on every guarded write: a claim must see the latest version, or two
  workers could both claim.
- Guarded writes go one per call; only unguarded ones (keys one writer owns) go in bulk. A
  failed bulk save does not say which items went in (daprd writes each on its own), and a
  read-back cannot tell either once another writer has moved the key on: a claim that went
  in would be reported lost, and its job left running under nobody.

Values are bytes or str, as the caller encoded them; this module knows no value's shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import grpc
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError
from dapr.clients.grpc._response import BulkStateItem as BulkItem
from dapr.clients.grpc._state import Concurrency, Consistency, StateItem, StateOptions

from jobrelay.batching import Coalescer
from jobrelay.conflicts import Conflict, Contended, KeyTaken, backoff, is_conflict
from jobrelay.constants import STATESTORE
from jobrelay.errors import DAPR_ERRORS

_GUARDED = StateOptions(concurrency=Concurrency.first_write, consistency=Consistency.strong)
# The most value bytes one bulk call carries. daprd refuses a gRPC message over 4 MiB either
# way (its default max body size), and keys, metadata and the base64 of encrypted values come
# on top of the data: a tenant with ten thousand queued jobs, or a few 1 MiB upload chunks,
# must not make one call that size.
BULK_BYTES = 2 * 1024 * 1024
# Keys per bulk read: most values are small records; a call whose answer is too big anyway
# is split in two until it fits.
_KEYS_PER_READ = 256
# The one bound on a read-modify-write: each lost race means another writer went through,
# so this many in a row means the key is hammered and the caller should back off for good.
UPDATE_TRIES = 8
# Inserts refused with a key absent by the time it is read (see `insert`) before giving up.
_INSERT_TRIES = 3
Value = bytes | str


@dataclass(frozen=True, slots=True)
class Item:
    """A value as read, with the ETag a guarded write of it must name."""

    data: bytes
    etag: str


@dataclass(frozen=True, slots=True)
class Write:
    """What a change in `State.update` decided to write, and the TTL it goes with."""

    data: Value
    ttl_seconds: int | None = None


def _as_bytes(data: Value) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _ttl(ttl_seconds: int | None) -> dict[str, str] | None:
    return None if ttl_seconds is None else {"ttlInSeconds": str(max(ttl_seconds, 1))}


async def _outcome(call: Awaitable[None]) -> BaseException | None:
    try:
        await call
    except Exception as exc:
        return exc
    return None


@dataclass(frozen=True, slots=True)
class _Save:
    key: str
    data: Value
    etag: str | None
    guarded: bool
    ttl_seconds: int | None


def _by_size(saves: list[_Save]) -> list[list[_Save]]:
    """`saves` in order, cut into runs of at most BULK_BYTES of values each (a bigger value
    goes alone)."""
    runs: list[list[_Save]] = [[]]
    size = 0
    for save in saves:
        length = len(_as_bytes(save.data))
        if runs[-1] and size + length > BULK_BYTES:
            runs.append([])
            size = 0
        runs[-1].append(save)
        size += length
    return runs


class State:
    def __init__(self, dapr: DaprClient, store: str = STATESTORE) -> None:
        self._dapr = dapr
        self._store = store
        # Reads and writes of concurrent requests, gathered into bulk calls (jobrelay.batching).
        self._reads: Coalescer[str, Item | None] = Coalescer(self._read_batch)
        self._saves: Coalescer[_Save, None] = Coalescer(self._save_batch)

    async def get(self, key: str) -> Item | None:
        return await self._reads(key)

    async def _read_batch(self, keys: list[str]) -> list[Item | BaseException | None]:
        if len(keys) == 1:
            resp = await self._dapr.get_state(self._store, keys[0])
            return [Item(_as_bytes(resp.data), resp.etag) if resp.data else None]
        by_key = await self._bulk_read(list(dict.fromkeys(keys)))
        out: list[Item | BaseException | None] = []
        for key in keys:
            item = by_key.get(key)
            if item is None or item.error:
                reason = item.error if item else "not answered"
                out.append(DaprInternalError(f"state {key}: {reason}"))
            else:
                out.append(Item(_as_bytes(item.data), item.etag) if item.data else None)
        return out

    async def _bulk_read(
        self, keys: list[str], parallelism: int = 8, keys_per_call: int = _KEYS_PER_READ
    ) -> dict[str, BulkItem]:
        """Every key's item, in as few bulk calls as keep each answer under daprd's message
        limit: a call answered "too big" is split in two."""
        if not keys:
            return {}
        if len(keys) > keys_per_call:
            parts = [keys[i : i + keys_per_call] for i in range(0, len(keys), keys_per_call)]
        else:
            try:
                found = await self._dapr.get_bulk_state(self._store, keys, parallelism=parallelism)
                return {item.key: item for item in found.items}
            except grpc.RpcError as exc:
                if len(keys) == 1 or exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
            parts = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
        answers = await asyncio.gather(
            *(self._bulk_read(part, parallelism, keys_per_call) for part in parts)
        )
        return {key: item for answer in answers for key, item in answer.items()}

    async def _save(self, save: _Save) -> None:
        await self._dapr.save_state(
            self._store,
            save.key,
            save.data,
            etag=save.etag,
            options=_GUARDED if save.guarded else None,
            state_metadata=_ttl(save.ttl_seconds),
        )

    async def _save_batch(self, saves: list[_Save]) -> list[BaseException | None]:
        """One SaveState for all of `saves` (unguarded: each key has one writer). Should it
        fail, the store does not tell which items went in, so every key is read back: an
        item whose value is there went in, and the others are tried again one by one. With
        one writer per key, nobody else can have moved a key on between the two.

        Two saves of one key go one after the other, in order: in one bulk call daprd would
        write them side by side, and either could end up last."""
        if len(saves) == 1 or len({s.key for s in saves}) < len(saves):
            return [await _outcome(self._save(s)) for s in saves]
        outcomes: list[BaseException | None] = []
        for part in _by_size(saves):
            outcomes += await self._save_bulk(part)
        return outcomes

    async def _save_bulk(self, saves: list[_Save]) -> list[BaseException | None]:
        if len(saves) == 1:
            return [await _outcome(self._save(saves[0]))]
        items = [StateItem(s.key, s.data, metadata=_ttl(s.ttl_seconds) or {}) for s in saves]
        try:
            await self._dapr.save_bulk_state(self._store, items)
            return [None] * len(saves)
        except DAPR_ERRORS:
            pass
        found = await self._bulk_read([s.key for s in saves])
        stored = {key: _as_bytes(item.data) for key, item in found.items() if not item.error}
        return [
            None if stored.get(s.key) == _as_bytes(s.data) else await _outcome(self._save(s))
            for s in saves
        ]

    async def get_many(
        self, keys: Iterable[str], parallelism: int = 8, keys_per_call: int = _KEYS_PER_READ
    ) -> dict[str, Item | None]:
        """The keys in as few calls as fit (at most `keys_per_call` each: fewer for big
        values): an Item, or None for an absent key. A key that failed to read is left out,
        so a caller can tell "absent" from "unknown" where that matters."""
        found = await self._bulk_read(list(dict.fromkeys(keys)), parallelism, keys_per_call)
        return {
            key: Item(_as_bytes(item.data), item.etag) if item.data else None
            for key, item in found.items()
            if not item.error
        }

    async def put(self, key: str, data: Value, ttl_seconds: int | None = None) -> None:
        """An unguarded write: for keys only one writer ever writes (a file's chunks)."""
        await self._saves(_Save(key, data, None, False, ttl_seconds))

    async def insert(self, key: str, data: Value, ttl_seconds: int | None = None) -> None:
        """Write `key` only if absent; KeyTaken if it is there.

        Stores refuse a taken key differently (Redis answers a generic error, not ABORTED),
        so a refusal is confirmed by a read: there means taken. Absent is ambiguous (a real
        failure, or a key deleted since it refused this insert), so the insert is tried
        again, and a failure that outlasts the tries is raised.
        """
        for attempt in range(_INSERT_TRIES):
            try:
                await self._save(_Save(key, data, None, True, ttl_seconds))
                return
            except DAPR_ERRORS as exc:
                if is_conflict(exc) or await self.get(key) is not None:
                    raise KeyTaken(key) from exc
                if attempt == _INSERT_TRIES - 1:
                    raise
                await asyncio.sleep(backoff(attempt))

    async def replace(
        self, key: str, data: Value, etag: str, ttl_seconds: int | None = None
    ) -> None:
        """Write `key` if it is still at `etag`; Conflict if another write came first."""
        try:
            await self._save(_Save(key, data, etag, True, ttl_seconds))
        except DAPR_ERRORS as exc:
            if is_conflict(exc):
                raise Conflict(key) from exc
            raise

    async def write(
        self, key: str, data: Value, etag: str | None, ttl_seconds: int | None = None
    ) -> None:
        """`insert` when `etag` is None (the key was absent when read), else `replace`."""
        if etag is None:
            await self.insert(key, data, ttl_seconds)
        else:
            await self.replace(key, data, etag, ttl_seconds)

    async def delete(self, key: str, etag: str | None = None) -> None:
        """Delete `key` (only if still at `etag`, when given; Conflict if not)."""
        try:
            await self._dapr.delete_state(
                self._store, key, etag=etag, options=_GUARDED if etag else None
            )
        except DaprInternalError as exc:
            if etag is not None and is_conflict(exc):
                raise Conflict(key) from exc
            raise

    async def update(
        self, key: str, change: Callable[[bytes | None], Write | None]
    ) -> tuple[bytes | None, bool]:
        """Apply `change` (the current value, None if absent -> what to write, or None to
        leave it) until a guarded write of its answer goes through.

        Returns the value as it now stands and whether this call wrote it. `change` may run
        more than once (once per lost race), so it must not act outside its return value;
        it may raise to stop (its exception passes through untouched). Contended after
        UPDATE_TRIES lost races.
        """
        for attempt in range(UPDATE_TRIES):
            item = await self.get(key)
            current = item.data if item else None
            new = change(current)
            if new is None:
                return current, False
            try:
                await self.write(key, new.data, item.etag if item else None, new.ttl_seconds)
            except Conflict:
                await asyncio.sleep(backoff(attempt))
                continue
            return _as_bytes(new.data), True
        raise Contended(key)
