"""The per-tenant webhook secret table and the CLI that makes its entries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from standardwebhooks import Webhook

from jobrelay.contract.credentials import new_webhook_secret as new_secret
from jobrelay.webhook_secrets import parse_table


def test_new_secrets_are_distinct_standard_webhooks_secrets() -> None:
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_")
        Webhook(secret)  # usable as it is


def test_the_table_merges_every_value_of_the_secret() -> None:
    a, b = new_secret(), new_secret()
    table = parse_table({"x": json.dumps({"acme": a}), "y": json.dumps({"globex": b}), "z": ""})
    assert table == {"acme": a, "globex": b}


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(["whsec_x"]),
        json.dumps({"acme": "whsec_not*a*secret"}),
        json.dumps({"acme": ""}),
        json.dumps({"acme": "whsec_"}),
        json.dumps({"acme": "whsec_c2hvcnQ="}),  # 5 bytes: too short to be a key
        json.dumps({"": new_secret()}),
    ],
)
def test_a_malformed_table_is_refused_without_echoing_secrets(raw: str) -> None:
    with pytest.raises(ValueError, match=r"webhook secret table|tenant") as refused:
        parse_table({"WEBHOOK_SECRETS": raw})
    loaded = json.loads(raw)
    values = loaded.values() if isinstance(loaded, dict) else loaded
    assert not any(len(v) > len("whsec_") and v in str(refused.value) for v in values)


def test_the_cli_prints_a_secret_and_its_table_entry() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobrelay.cli", "admin", "new-webhook-secret", "--tenant", "acme"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    made = json.loads(out)
    assert made["secret_entry"] == {"acme": made["webhook_secret"]}
    assert parse_table({"WEBHOOK_SECRETS": json.dumps(made["secret_entry"])})
