"""Every model call goes through here: the task's fallback list, the retry policy
(apps/worker/retry.py), the per-worker in-flight limit and the shared per-profile limits
(apps/worker/rate_window.py, apps/worker/slots.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, DefaultAioHttpClient

from apps.worker.fair_gate import FairGate, Turn
from apps.worker.genai import count_retry, model_call
from apps.worker.profiles import Catalog, ModelProfile
from apps.worker.rate_window import ModelRequest, RateWindows
from apps.worker.retry import Verdict, on_profile, verdict
from apps.worker.slots import SharedSlots
from jobrelay.contract import ModelCall, utcnow
from jobrelay.task_catalog import Capability

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[AsyncOpenAI, ModelProfile, float], Awaitable[T]]

# Label embeddings kept per (tenant, model, label); labels repeat across jobs far more than
# texts do. Per tenant: a shared cache would answer one tenant's label for free (usage 0)
# because another tenant had used it, and so tell it what others classify into.
_LABEL_CACHE_SIZE = 20_000
LabelKey = tuple[str, str, str]


class CapabilityUnavailable(Exception):
    """No configured model can do what the task needs (see, say, an image)."""


class ModelBudgetSpent(Exception):
    """The job has made as many model calls as one job may (over all its attempts)."""


def _client(profile: ModelProfile) -> AsyncOpenAI:
    # max_retries=0: retries belong to one policy (retry.py), not to two stacked ones. The
    # SDK's aiohttp transport: the same requests as its default, for less CPU per call.
    key = profile.api_key().get_secret_value()
    if profile.kind == "azure":
        return AsyncAzureOpenAI(
            azure_endpoint=profile.base_url,
            azure_deployment=profile.azure_deployment,
            api_version=profile.api_version,
            api_key=key,
            max_retries=0,
            http_client=DefaultAioHttpClient(),
        )
    return AsyncOpenAI(
        base_url=profile.base_url, api_key=key, max_retries=0, http_client=DefaultAioHttpClient()
    )


class Gateway:
    def __init__(
        self,
        catalog: Catalog,
        limits: tuple[RateWindows, SharedSlots] | None,
        max_inflight: int,
        tenant_weights: dict[str, float] | None = None,
    ) -> None:
        self.catalog = catalog
        self._limits = limits  # shared by every replica; None: this worker's limit alone
        self._clients = {name: _client(p) for name, p in catalog.profiles.items()}
        # Per worker: calls beyond this wait here, served by priority and fair share among
        # tenants (fair_gate.py), and the sidecar's app-max-concurrency keeps further
        # messages with the broker rather than in this process.
        self._inflight = FairGate(max_inflight, tenant_weights)
        self.labels: dict[LabelKey, npt.NDArray[np.float32]] = {}

    async def close(self) -> None:
        if self._limits is not None:
            # The parked shared slots go back now; a rate window only counts, so holds none.
            _, slots = self._limits
            await slots.close()
        for client in self._clients.values():
            await client.close()

    def remember_labels(
        self, tenant: str, model: str, vectors: dict[str, npt.NDArray[np.float32]]
    ) -> None:
        if len(self.labels) + len(vectors) > _LABEL_CACHE_SIZE:
            self.labels.clear()
        self.labels.update({(tenant, model, label): v for label, v in vectors.items()})

    async def call(
        self,
        chain: list[ModelProfile],
        capability: Capability,
        deadline: datetime | None,
        calls: list[ModelCall],
        attempt: int,
        op: Op[T],
        tokens: int = 0,
        budget: int | None = None,
        turn: Turn | None = None,
    ) -> tuple[T, ModelProfile]:
        """`op`'s answer from the first profile of `chain` that gives one, and that profile.

        `tokens` estimates the call's tokens, for the profiles' tokens-per-minute limits.
        `budget`: the calls the job may still make; ModelBudgetSpent once `calls` holds that
        many (every retry is a call). `turn`: the job's priority and tenant, which order the
        wait for this worker's in-flight limit.
        """
        turn = turn or Turn()
        if not chain:
            raise CapabilityUnavailable(capability)
        last: BaseException | None = None
        for profile in chain:
            try:
                retrying = on_profile(profile, deadline)
                async for try_ in retrying:
                    if try_.retry_state.attempt_number > 1:
                        count_retry(profile)
                    with try_:
                        if budget is not None and len(calls) >= budget:
                            raise ModelBudgetSpent(
                                f"the job made the most model calls one job may make "
                                f"({len(calls)} in this attempt; "
                                "JOBRELAY_WORKER_MAX_MODEL_CALLS_PER_JOB)"
                            )
                        answer = await self._once(
                            profile, capability, deadline, calls, attempt, op, tokens, turn
                        )
                        return answer, profile
            except Exception as exc:
                if verdict(exc) is Verdict.FATAL:
                    raise
                last = exc
                log.warning(
                    "profile=%s gave up (%s: %s); trying the next model",
                    profile.name,
                    type(exc).__name__,
                    exc,
                )
        assert last is not None
        raise last

    async def _once(
        self,
        profile: ModelProfile,
        capability: Capability,
        deadline: datetime | None,
        calls: list[ModelCall],
        attempt: int,
        op: Op[T],
        tokens: int,
        turn: Turn,
    ) -> T:
        seconds = profile.timeout_seconds
        if deadline is not None:
            seconds = max(min(seconds, deadline.timestamp() - time.time()), 0.001)
        # The rate limit first: a call waiting for the next minute holds no slot, so the
        # slot's lease cannot run out while it waits. Then this worker's own slot, then the
        # one shared with every replica: each is held only around the model call itself.
        if self._limits is None:
            async with self._inflight.admitted(turn):
                return await self._timed(profile, capability, calls, attempt, op, seconds)
        rates, slots = self._limits
        await rates.admit(ModelRequest(profile, tokens), deadline)
        async with self._inflight.admitted(turn):
            slot = await slots.admit(profile, deadline)
            try:
                return await self._timed(profile, capability, calls, attempt, op, seconds)
            finally:
                slot.release()

    async def _timed(
        self,
        profile: ModelProfile,
        capability: Capability,
        calls: list[ModelCall],
        attempt: int,
        op: Op[T],
        seconds: float,
    ) -> T:
        started, clock = utcnow(), time.monotonic()
        error: str | None = "interrupted"  # until the call ends one way or the other
        status: int | None = None
        try:
            # The GenAI span and model-call metrics (genai.py) time the call alone, not
            # the waits for the shared limits above.
            with model_call(profile, capability) as span:
                answer = await op(self._clients[profile.name], profile, seconds)
                span.answered(answer)
            error = None
            return answer
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
            raise
        finally:
            calls.append(
                ModelCall(
                    profile=profile.name,
                    model=profile.model,
                    attempt=attempt,
                    started_at=started,
                    seconds=time.monotonic() - clock,
                    error=error,
                    status_code=status,
                )
            )
