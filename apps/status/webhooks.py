"""Webhook delivery: POST the job, signed in the Standard Webhooks scheme, to the URL the
client gave; retried with jittered exponential backoff; every attempt recorded on the job.

A delivery never changes the job's status. The `webhook-id` is stable per job and status
change (`{job_id}-{seq}`), so a receiver can drop the duplicates a retry or a redelivered
event may cause.
"""

from __future__ import annotations

import logging

import httpx
from standardwebhooks import Webhook
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from apps.status.settings import StatusSettings
from apps.status.signing import SigningSecrets
from jobrelay.contract import JobRecord, JobView, WebhookDelivery, WebhookEvent, utcnow
from jobrelay.errors import DAPR_ERRORS
from jobrelay.state import STORE_ERRORS
from jobrelay.store import JobStore
from jobrelay.webhook_targets import RefusedTarget, check_url

log = logging.getLogger(__name__)


class WebhookSender:
    def __init__(
        self,
        store: JobStore,
        settings: StatusSettings,
        http: httpx.AsyncClient,
        secrets: SigningSecrets,
    ) -> None:
        self._store = store
        self._settings = settings
        self._http = http
        self._secrets = secrets

    async def on_change(self, record: JobRecord) -> None:
        spec = record.webhook
        event = WebhookEvent.of(record.status)
        if spec is None or event is None or event not in spec.events:
            return
        body = JobView.of(record, self._settings.public_base_url).model_dump_json()
        msg_id = f"{record.id}-{record.seq}"
        try:
            # Again at delivery, not only at submit: the name may resolve elsewhere by now.
            await check_url(spec.url)
        except RefusedTarget as exc:
            log.warning("job_id=%s webhook to %s refused: %s", record.id, spec.url, exc)
            refused = WebhookDelivery(
                event=event, attempt=1, at=utcnow(), delivered=False, error=f"refused: {exc}"
            )
            await self._note(record.id, refused)
            return
        signer = await self._signer(record, event)
        if signer is None:
            return
        attempt = 0

        async def deliver_once() -> WebhookDelivery:
            nonlocal attempt
            attempt += 1
            delivery = await self._post(signer, spec.url, msg_id, body, event, attempt)
            await self._note(record.id, delivery)
            return delivery

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.webhook_attempts),
            wait=wait_random_exponential(multiplier=1, max=30),
            retry=retry_if_result(lambda delivery: not delivery.delivered),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        last: WebhookDelivery | None = await retrying(deliver_once)
        if last is None or not last.delivered:
            log.warning(
                "job_id=%s webhook %s to %s failed %d times; given up",
                record.id,
                event,
                spec.url,
                attempt,
            )

    async def _signer(self, record: JobRecord, event: WebhookEvent) -> Webhook | None:
        """The signer of the job's tenant; None (and the reason noted on the job) if there is
        none: jobrelay never sends an unsigned webhook, nor one signed for another tenant."""
        try:
            secret = await self._secrets.for_tenant(record.tenant)
        except DAPR_ERRORS as exc:
            reason = f"webhook signing secrets unreadable ({type(exc).__name__}); not sent"
        else:
            if secret is not None:
                return Webhook(secret)
            reason = (
                f"no webhook signing secret for tenant {record.tenant!r} (README, Security: "
                "new-webhook-secret); not sent"
            )
        log.warning("job_id=%s webhook %s: %s", record.id, event, reason)
        failed = WebhookDelivery(event=event, attempt=1, at=utcnow(), delivered=False, error=reason)
        await self._note(record.id, failed)
        return None

    async def _post(
        self, signer: Webhook, url: str, msg_id: str, body: str, event: WebhookEvent, attempt: int
    ) -> WebhookDelivery:
        at = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signer.sign(msg_id, at, body),
        }
        try:
            resp = await self._http.post(
                url, content=body, headers=headers, timeout=self._settings.webhook_timeout_seconds
            )
        except httpx.HTTPError as exc:
            return WebhookDelivery(
                event=event,
                attempt=attempt,
                at=at,
                delivered=False,
                error=f"{type(exc).__name__}: {exc}",
            )
        ok = resp.is_success
        return WebhookDelivery(
            event=event,
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
