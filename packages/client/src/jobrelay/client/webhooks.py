"""Checking that a webhook came from jobrelay, in the Standard Webhooks scheme.

The status app signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under the
`whsec_...` secret; `standardwebhooks` (the scheme's own library) checks the signature and
refuses timestamps more than five minutes off, which stops replays of an old delivery.
"""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from jobrelay.client.errors import JobrelayError
from jobrelay.contract import JobView


class InvalidSignature(JobrelayError):
    """The delivery was not signed with the secret, was altered, or is too old."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_signature", message)


def verify_webhook(secret: str, body: bytes | str, headers: Mapping[str, str]) -> JobView:
    """The job a delivery carries, once its signature checks out; InvalidSignature if not.

    Pass the body exactly as received (bytes): a re-serialised body no longer matches.
    Drop duplicates by `headers["webhook-id"]`, which stays the same across retries.
    """
    payload = body if isinstance(body, bytes) else body.encode()
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        Webhook(secret).verify(payload, lowered)
    except WebhookVerificationError as exc:
        raise InvalidSignature(str(exc)) from exc
    return JobView.model_validate_json(payload)
