"""The format of the two credentials an operator makes (`jobrelay admin new-key`,
`jobrelay admin new-webhook-secret`) and the servers read back from their secret store.

An API key is 32 random bytes behind a recognisable prefix, and only its SHA-256 is stored: a
leaked secret store lists tenants, not usable keys. A single hash is enough, since there is
nothing to brute-force (unlike a password); a slow password hash would only add latency to
every request. A webhook signing secret is stored as it is, since signing needs the secret
itself.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

# Recognisable in logs and by secret scanners.
KEY_PREFIX = "jr_"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
# The Standard Webhooks spec asks for 24 to 64 random bytes; 32 is the middle of that.
_WEBHOOK_SECRET_BYTES = 32


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return (
        WEBHOOK_SECRET_PREFIX
        + base64.b64encode(secrets.token_bytes(_WEBHOOK_SECRET_BYTES)).decode()
    )
