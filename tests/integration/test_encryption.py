"""Data at rest: what clients send and models answer is stored encrypted by daprd.

Read straight from the store the profile runs (redis-cli, psql), beside daprd rather than
through it, since through a sidecar every value reads back decrypted.
"""

from __future__ import annotations

import base64
import glob
import json
import subprocess
import uuid

import httpx
import pytest

from jobrelay.contract import JobMessage, JobRecord, Priority
from jobrelay.lanes import Lanes
from tests.integration.helpers import SENTIMENT, classify, submit, wait_done
from tests.integration.stack import Stack

# The topic (a Redis stream on the redis profile) the `default` tenant's jobs go to.
_DEFAULT_LANE = Lanes().topic(Priority.NORMAL, "default")


def _raw(stack: Stack, store: str, key: str) -> str:
    """The value of `key` in `store` as the backing server holds it ("" if absent)."""
    assert stack.servers is not None
    env = stack.servers.daprd_env
    if "JOBRELAY_REDIS_HOST" in env:
        return _run(_redis_cli(stack, "HGET", f"{store}||{key}", "data"))
    psql = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    table = {"statestore": "jobrelay_state"}[store]
    query = f"SELECT value, isbinary FROM {table} WHERE key = '{store}||{key}'"  # noqa: S608 (test-made key)
    out = _run([psql, env["JOBRELAY_POSTGRES_URL"], "-At", "-F", "\t", "-c", query])
    if not out:
        return ""
    value, is_binary = out.rsplit("\t", 1)
    # The PostgreSQL store keeps a value that is not JSON as a base64 JSON string.
    return base64.b64decode(json.loads(value)).decode() if is_binary == "t" else value


def _redis_cli(stack: Stack, *args: str) -> list[str]:
    assert stack.servers is not None
    port = stack.servers.daprd_env["JOBRELAY_REDIS_HOST"].rsplit(":", 1)[1]
    return ["redis-cli", "-p", port, "--raw", *args]


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def _decrypted(client: httpx.Client, stack: Stack, store: str, key: str) -> bytes:
    resp = client.get(f"{stack.sidecar('status')}/v1.0/state/{store}/{key}")
    assert resp.status_code == 200, resp.text
    return resp.content


def _assert_ciphertext(raw: str, *plaintexts: str) -> None:
    # daprd's format: base64(nonce + AES-GCM ciphertext) || name of the key's secret.
    assert raw.endswith("||STATE"), raw[:200]
    for text in plaintexts:
        assert text not in raw


def test_jobs_with_their_inputs_and_results_are_stored_encrypted(
    client: httpx.Client, stack: Stack
) -> None:
    marker = f"I love this product, order {uuid.uuid4().hex}"
    url = submit(client, stack, classify(marker)).json()["status_url"]
    job = wait_done(client, url)
    assert job["status"] == "succeeded", job
    assert job["result"]["output"]["label"] == "positive"

    # The record, input and result in it, is ciphertext in the store...
    key = f"job:{job['id']}"
    _assert_ciphertext(_raw(stack, "statestore", key), marker, "positive", job["id"])
    if stack.profile == "redis":  # the broker is the same Redis: its streams, read raw
        for stream in (_DEFAULT_LANE, "job-events"):
            messages = _run(_redis_cli(stack, "XREVRANGE", stream, "+", "-", "COUNT", "500"))
            assert marker not in messages

    # ...and plaintext only through a sidecar.
    record = JobRecord.model_validate_json(_decrypted(client, stack, "statestore", key))
    assert record.input.text == marker
    assert record.params["labels"] == SENTIMENT
    assert record.result is not None
    assert record.result.output["label"] == "positive"


def test_uploads_are_stored_encrypted(client: httpx.Client, stack: Stack) -> None:
    # The cue makes the model fail, so the job (and its file) stays until it is cancelled.
    text = f"A private document {uuid.uuid4().hex} [fail:503:always]"
    resp = client.post(
        f"{stack.url('intake')}/v1/jobs",
        files={"file": ("private.txt", text.encode(), "text/plain")},
        data={"task": "classify", "params": json.dumps({"labels": SENTIMENT})},
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    try:
        # intake stores every chunk before it answers 202.
        chunk = f"file:{job_id}:0"
        _assert_ciphertext(_raw(stack, "statestore", chunk), text, "private document")
        assert _decrypted(client, stack, "statestore", chunk) == text.encode()
    finally:
        client.delete(resp.json()["status_url"])


def test_the_jobs_topic_carries_one_claim_check_per_job(client: httpx.Client, stack: Stack) -> None:
    """One message per job, and a claim check only: the record stays in the store."""
    if stack.profile != "redis":
        pytest.skip("reads the broker's stream; the redis profile's broker is Redis")
    job = wait_done(client, submit(client, stack, classify("one message")).json()["status_url"])
    raw = _run(_redis_cli(stack, "XREVRANGE", _DEFAULT_LANE, "+", "-", "COUNT", "1000"))
    events = [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
    mine = [e for e in events if job["id"] in json.dumps(e)]
    assert len(mine) == 1, mine
    data = mine[0]["data"]
    message = JobMessage.model_validate(json.loads(data) if isinstance(data, str) else data)
    assert (message.job_id, message.task) == (job["id"], "classify")
    assert set(json.loads(message.model_dump_json())) == {"job_id", "task", "sent_at"}
