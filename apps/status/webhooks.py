"""Webhook delivery: POST the job, signed in the Standard Webhooks scheme, to the URL the
client gave; retried with jittered exponential backoff; every attempt recorded on the job.

A delivery never changes the job's status. The `webhook-id` is stable per job and status
change (`{job_id}-{seq}`; an `output` event's `{job_id}-{seq}.{n}`, as its id on the event
stream), so a receiver can drop the duplicates a retry or a redelivered event may cause.

`on_change` only hands the delivery to the lanes (apps/status/delivery_lanes.py) and
returns, so the event that triggered it is acknowledged at once whatever the receiver does.
One job's webhooks still go out in the order of its changes: each waits until the one
before it was delivered or given up (`running` never arrives after `completed`).
Each try then resolves and checks the URL (jobrelay.webhook_targets) and connects to exactly
the addresses that passed, keeping the URL's host for the Host header and TLS (SNI and the
certificate's name): no second lookup can swap in an internal address. What is recorded on
the job says whether the receiver answered and with what status, never why a connection
failed: "refused" against "timed out" would map jobrelay's network for a client.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

import httpx
from standardwebhooks import Webhook
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from apps.status.delivery_lanes import DeliveryLanes
from apps.status.settings import StatusSettings
from apps.status.signing import SigningSecrets
from jobrelay.conflicts import STORE_ERRORS
from jobrelay.contract import JobRecord, JobView, WebhookDelivery, WebhookEvent, utcnow
from jobrelay.deltas import DeltaLog
from jobrelay.errors import DAPR_ERRORS
from jobrelay.event_ids import EventId
from jobrelay.store import JobStore
from jobrelay.webhook_targets import RefusedTarget, Target, UnresolvedTarget, resolve_target

log = logging.getLogger(__name__)

NO_ANSWER = "no answer (the connection failed or timed out)"


@dataclass(frozen=True, slots=True)
class _Try:
    delivery: WebhookDelivery
    again: bool  # another try may go differently


@dataclass(frozen=True, slots=True)
class _Message:
    record: JobRecord
    event: WebhookEvent
    msg_id: str
    body: str


def target_key(url: str) -> str:
    """The lane of a URL's target: scheme, host and port, as a receiver is one server."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}"


class WebhookSender:
    def __init__(
        self,
        store: JobStore,
        settings: StatusSettings,
        http: httpx.AsyncClient,
        secrets: SigningSecrets,
        deltas: DeltaLog,
    ) -> None:
        self._store = store
        self._deltas = deltas  # the streamed text an `output` event carries
        self._settings = settings
        self._http = http
        self._secrets = secrets
        self.lanes = DeliveryLanes(
            settings.webhook_concurrency_per_tenant,
            settings.webhook_concurrency_per_target,
            settings.webhook_backlog_per_tenant,
        )
        self._latest: dict[str, asyncio.Task[None]] = {}  # per job: its last delivery

    async def on_change(self, record: JobRecord) -> None:
        """Start delivering `record`'s webhook if it asked for this change; returns at once."""
        spec = record.webhook
        event = spec.wanted(record.status) if spec is not None else None
        if event is not None:
            await self._submit(record, event)

    async def on_output(self, record: JobRecord, delta: int) -> None:
        """Start delivering an `output` event: `record` (running) with the text its attempt
        streamed up to chunk `delta`; returns at once."""
        if record.webhook is not None and WebhookEvent.OUTPUT in record.webhook.events:
            await self._submit(record, WebhookEvent.OUTPUT, delta)

    async def _submit(
        self, record: JobRecord, event: WebhookEvent, delta: int | None = None
    ) -> None:
        before = self._latest.get(record.id)
        task = self.lanes.submit(record.tenant, partial(self._after, before, record, event, delta))
        if task is not None:
            self._latest[record.id] = task
            task.add_done_callback(partial(self._forget, record.id))
            return
        log.warning("job_id=%s webhook %s not sent: its tenant's backlog is full", record.id, event)
        await self._note(
            record.id,
            WebhookDelivery(
                event=event,
                attempt=1,
                at=utcnow(),
                delivered=False,
                error="not sent: too many webhooks of this tenant are waiting",
            ),
        )

    async def close(self) -> None:
        await self.lanes.close()

    async def _after(
        self,
        before: asyncio.Task[None] | None,
        record: JobRecord,
        event: WebhookEvent,
        delta: int | None,
    ) -> None:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own; only the order matters
        await self._deliver(record, event, delta)

    def _forget(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._latest.get(job_id) is task:
            del self._latest[job_id]

    async def _deliver(
        self, record: JobRecord, event: WebhookEvent, delta: int | None = None
    ) -> None:
        assert record.webhook is not None
        # An `output` is tried once and not recorded on the job: the next one, 500 ms on,
        # carries all its text, and a record write per output would cost more than it says.
        output = event is WebhookEvent.OUTPUT
        lane = target_key(record.webhook.url)
        message: _Message | None = None
        attempt = 0

        async def try_once() -> _Try:
            nonlocal attempt, message
            attempt += 1
            if message is None:
                try:
                    message = await self._message(record, event, delta)
                except DAPR_ERRORS as exc:
                    log.warning("job_id=%s webhook: job unreadable, retried: %s", record.id, exc)
                    unread = WebhookDelivery(
                        event=event,
                        attempt=attempt,
                        at=utcnow(),
                        delivered=False,
                        error="the job could not be read from the store; retried",
                    )
                    return _Try(unread, again=True)
            async with self.lanes.slot(record.tenant, lane):
                tried = await self._try(message, attempt)
            if not output:
                await self._note(record.id, tried.delivery)
            return tried

        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 if output else self._settings.webhook_attempts),
            wait=wait_random_exponential(multiplier=1, max=30),
            retry=retry_if_result(lambda tried: tried.again),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        last: _Try | None = await retrying(try_once)
        if last is None or not last.delivery.delivered:
            log.warning(
                "job_id=%s webhook %s not delivered after %d tries", record.id, event, attempt
            )

    async def _message(
        self, record: JobRecord, event: WebhookEvent, delta: int | None = None
    ) -> _Message:
        view = JobView.of(record, self._settings.public_base_url)
        if delta is None:
            return _Message(record, event, f"{record.id}-{record.seq}", view.model_dump_json())
        text = "".join(await self._deltas.read(record.id, record.seq, 1, delta))
        body = view.model_copy(update={"streamed_text": text}).model_dump_json()
        # The event's id, as on the job's stream (jobrelay.event_ids): one per output.
        return _Message(record, event, f"{record.id}-{EventId(record.seq, delta)}", body)

    async def _try(self, message: _Message, attempt: int) -> _Try:
        """One try: check the target (again: DNS may have changed), sign, send."""
        spec = message.record.webhook
        assert spec is not None

        def failed(error: str, again: bool) -> _Try:
            delivery = WebhookDelivery(
                event=message.event, attempt=attempt, at=utcnow(), delivered=False, error=error
            )
            return _Try(delivery, again)

        try:
            target = await resolve_target(spec.url)
        except UnresolvedTarget as exc:
            return failed(str(exc), again=True)
        except RefusedTarget as exc:
            log.warning("job_id=%s webhook refused: %s", message.record.id, exc)
            return failed(f"refused: {exc}", again=False)
        try:
            secret = await self._secrets.for_tenant(message.record.tenant)
        except DAPR_ERRORS as exc:
            # The store is down, not the tenant's secret gone: the next try may read it.
            log.warning("job_id=%s webhook signing secrets unreadable: %s", message.record.id, exc)
            return failed("the webhook signing secrets could not be read; retried", again=True)
        if secret is None:
            log.warning("job_id=%s webhook: no signing secret for its tenant", message.record.id)
            return failed(
                f"no webhook signing secret for tenant {message.record.tenant!r} "
                "(docs/security.md: jobrelay admin new-webhook-secret); not sent",
                again=False,
            )
        delivery = await self._post(target, Webhook(secret), message, attempt)
        return _Try(delivery, again=not delivery.delivered)

    async def _post(
        self, target: Target, signer: Webhook, message: _Message, attempt: int
    ) -> WebhookDelivery:
        at = utcnow()
        url = httpx.URL(target.url)
        headers = {
            "content-type": "application/json",
            "webhook-id": message.msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signer.sign(message.msg_id, at, message.body),
            # The URL's own host, although the connection goes to the checked address.
            "host": url.netloc.decode("ascii"),
        }
        # TLS names the URL's host too (SNI), and the certificate must be valid for it.
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        try:
            resp = await self._http.post(
                url.copy_with(host=str(target.addresses[0])),
                content=message.body,
                headers=headers,
                extensions=extensions,
                timeout=self._settings.webhook_timeout_seconds,
            )
        except httpx.HTTPError:
            return WebhookDelivery(
                event=message.event, attempt=attempt, at=at, delivered=False, error=NO_ANSWER
            )
        ok = resp.is_success
        return WebhookDelivery(
            event=message.event,
            attempt=attempt,
            at=at,
            status_code=resp.status_code,
            delivered=ok,
            error=None if ok else f"answered {resp.status_code}",
        )

    async def _note(self, job_id: str, delivery: WebhookDelivery) -> None:
        def noted(record: JobRecord) -> JobRecord:
            return record.model_copy(
                update={"webhook_deliveries": [*record.webhook_deliveries, delivery]}
            )

        try:
            await self._store.update(job_id, noted)
        except STORE_ERRORS as exc:
            log.warning("job_id=%s webhook delivery not recorded: %s", job_id, exc)
