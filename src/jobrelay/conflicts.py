"""How a write to the state store can fail, and how a writer that lost a race backs off.

`jobrelay.state` raises these; callers catch them without knowing how daprd or a store
reports them.
"""

from __future__ import annotations

import random

import grpc
from dapr.clients.exceptions import DaprInternalError

from jobrelay.errors import DAPR_ERRORS

# Backoff between tries: doubling from the first, jittered so racing writers spread out.
_BACKOFF_FIRST_SECONDS = 0.002
_BACKOFF_MAX_SECONDS = 0.2


class Conflict(Exception):
    """The key changed (or appeared, or went) since it was read."""


class KeyTaken(Conflict):
    """An insert found the key already there."""


class Contended(Exception):
    """`State.update` lost UPDATE_TRIES races in a row."""


# What a state operation raises when the store cannot be used right now: the sidecar or the
# store behind it is down, or a key is too contended to write. Nothing was decided; try later.
STORE_ERRORS: tuple[type[Exception], ...] = (*DAPR_ERRORS, Contended)


def is_conflict(exc: BaseException) -> bool:
    """daprd answers ABORTED on an ETag mismatch. The async SDK wraps save_state's gRPC error
    in DaprInternalError and raises others as a grpc.RpcError."""
    cause = exc.__cause__ if isinstance(exc, DaprInternalError) else exc
    return isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.ABORTED


def backoff(attempt: int) -> float:
    """Seconds to wait before try `attempt + 1` of a contended write."""
    ceiling = min(_BACKOFF_FIRST_SECONDS * 2**attempt, _BACKOFF_MAX_SECONDS)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not secrecy)
