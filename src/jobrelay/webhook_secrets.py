"""Per-tenant webhook signing secrets: the table the status app signs with. Their format is
shared with the CLI that makes them (`jobrelay admin new-webhook-secret`) in
jobrelay.contract.credentials.

The secret `WEBHOOK_SECRETS` in the Dapr secret store holds a JSON object
`{"<tenant>": "whsec_<base64>"}`. Unlike API keys these are stored as they are: signing needs
the secret itself, not a hash of it. As with API keys, a store that splits one secret into
several values may spread the object across them; all are merged.
"""

from __future__ import annotations

import base64
import binascii
import json

from jobrelay.contract.credentials import WEBHOOK_SECRET_PREFIX as PREFIX

# What the Standard Webhooks spec allows.
_MIN_BYTES, _MAX_BYTES = 24, 64


def _usable(secret: object) -> bool:
    """Strict base64 of 24-64 bytes: the signing library decodes leniently (it skips stray
    characters), so a mangled paste would sign with a different key than the tenant holds."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        return False
    body = secret[len(PREFIX) :]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error:
        return False
    return _MIN_BYTES <= len(raw) <= _MAX_BYTES


def merged_objects(values: dict[str, str], what: str) -> dict[str, object]:
    """The JSON objects in a secret's values, merged: a store that answers several values
    for one secret (Kubernetes, Key Vault) may split the table across them."""
    table: dict[str, object] = {}
    for raw in values.values():
        if not raw.strip():
            continue
        loaded = json.loads(raw)
        if not isinstance(loaded, dict):
            raise ValueError(f"the {what} must be a JSON object")
        table.update(loaded)
    return table


def parse_table(values: dict[str, str]) -> dict[str, str]:
    """tenant -> secret from the secret's values; ValueError names the first bad entry."""
    table = merged_objects(values, "webhook secret table (tenant -> whsec_)")
    for tenant, secret in table.items():
        if not tenant or not _usable(secret):
            # The tenant is named, the secret never is: this message reaches logs.
            raise ValueError(f"tenant {tenant!r}: not a whsec_ + base64 signing secret")
    return {tenant: str(secret) for tenant, secret in table.items()}
