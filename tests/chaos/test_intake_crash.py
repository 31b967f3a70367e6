"""Intake fails at every point of accepting a job; no job that got a 202 is lost, and none is
left half-accepted.

Intake publishes a job's message, then stores its record (apps/intake/submission.py). Each
case makes intake fail at one point through its fault-injection settings, and reads the
outcome where it is true: the messages on `jobs` since the case began, and the record (or the
fence a worker left) under each one's job id.

- exit_after_publish: intake dies after publishing, before storing. The client has no
  answer; the worker waits for the record through its grace, then fences the job's key. No
  record is ever stored; the message is acknowledged.
- fail_store: the store fails after the publish. The client gets 503 `not_accepted`; the same
  fence follows.
- a delay between publish and store: the worker's delivery arrives before the record, waits
  for it, and runs the job once.
- exit_after_store: intake dies after storing, before answering. The record has its message
  and the job runs; the client, with no answer, may retry.
- a client that retries after a crash with the same Idempotency-Key gets one job that runs
  once; the crashed attempt's message is fenced.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.chaos import observe
from tests.chaos.launcher import ARRIVAL_GRACE_SECONDS, Launcher

log = logging.getLogger(__name__)

CRASHES = 3
# The grace, then the fence's own round trip, with room for a loaded machine.
FENCE_SECONDS = float(ARRIVAL_GRACE_SECONDS) + 20.0
SETTLE_SECONDS = 60.0


def _last_message_id(chaos: Launcher) -> str:
    newest = chaos.redis_raw("XREVRANGE", observe.DEFAULT_LANE, "+", "-", "COUNT", "1").split()
    return newest[0] if newest else "0-0"


def _job_ids_since(chaos: Launcher, message_id: str) -> list[str]:
    """The jobs published on the default tenant's lane after the message `message_id`."""
    return observe.message_job_ids(chaos, after=message_id)


@contextmanager
def _intake_with(chaos: Launcher, **settings: str) -> Iterator[None]:
    """Intake restarted with `settings` (fault injection), and restarted without after."""
    intake = chaos.procs["intake"]
    intake.kill(signal.SIGTERM)
    intake.env.update(settings)
    try:
        chaos.restart("intake")
        yield
    finally:
        intake.kill(signal.SIGKILL)
        for name in settings:
            intake.env.pop(name, None)
        chaos.restart("intake")


def _submit(chaos: Launcher, body: dict[str, Any], **headers: str) -> httpx.Response | None:
    """The answer, or None if intake died before it answered."""
    try:
        with httpx.Client(timeout=30) as client:
            return client.post(f"{chaos.url('intake')}/v1/jobs", json=body, headers=headers)
    except httpx.HTTPError:
        return None


def _wait_fenced(chaos: Launcher, ids: list[str]) -> tuple[list[str], float]:
    started = time.monotonic()
    while True:
        fenced = observe.fenced(chaos, ids)
        waited = time.monotonic() - started
        if len(fenced) == len(ids) or waited > FENCE_SECONDS:
            return fenced, waited
        time.sleep(0.5)


def test_a_crash_after_publishing_leaves_a_message_the_worker_fences(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    since = _last_message_id(chaos)
    answers = []
    for _ in range(CRASHES):
        with _intake_with(chaos, JOBRELAY_INTAKE_FAULT="exit_after_publish"):
            answers.append(_submit(chaos, observe.embed_body(observe.unique_text("p"))))
    ids = _job_ids_since(chaos, since)
    fenced, waited = _wait_fenced(chaos, ids)
    figures.update(
        crashes=CRASHES,
        answered=sum(a is not None for a in answers),
        messages=len(ids),
        fenced=len(fenced),
        records_stored=len(ids) - len(fenced),
        fenced_after_seconds=round(waited, 1),
    )
    log.info("figures: %s", figures)

    assert answers == [None] * CRASHES  # intake died before answering, every time
    assert len(ids) == CRASHES  # each crash came after its publish
    assert sorted(fenced) == sorted(ids)  # and no record was ever stored for any of them


def test_a_store_that_fails_answers_503_and_the_message_is_fenced(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    since = _last_message_id(chaos)
    with _intake_with(chaos, JOBRELAY_INTAKE_FAULT="fail_store"):
        refused = _submit(chaos, observe.embed_body(observe.unique_text("s")))
    ids = _job_ids_since(chaos, since)
    fenced, waited = _wait_fenced(chaos, ids)
    retried = _submit(chaos, observe.embed_body(observe.unique_text("s-retry")))
    assert retried is not None
    final, _ = observe.wait_terminal(chaos, [retried.json()["id"]], SETTLE_SECONDS)
    figures.update(
        answer=None if refused is None else refused.status_code,
        messages=len(ids),
        fenced=len(fenced),
        fenced_after_seconds=round(waited, 1),
        retry=retried.status_code,
        retry_statuses=[(r or {}).get("status") for r in final.values()],
    )
    log.info("figures: %s", figures)

    assert refused is not None
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "not_accepted"
    assert (len(ids), fenced) == (1, ids)
    assert retried.status_code == 202
    assert [r["status"] for r in final.values() if r] == ["succeeded"]


def test_a_delivery_that_comes_before_its_record_waits_and_runs_the_job_once(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    text = observe.unique_text("d")
    with _intake_with(chaos, JOBRELAY_INTAKE_FAULT_STORE_DELAY_SECONDS="0.8"):
        accepted = _submit(chaos, observe.embed_body(text))
    assert accepted is not None
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    final, _ = observe.wait_terminal(chaos, [job_id], SETTLE_SECONDS)
    record = final[job_id]
    figures.update(
        status=record["status"] if record else None,
        model_calls=chaos.double.calls(text),
        queue_seconds=record["queue_seconds"] if record else None,
    )
    log.info("figures: %s", figures)

    assert record is not None
    assert record["status"] == "succeeded"
    assert chaos.double.calls(text) == 1
    # The record was created before the message left: the wait for it shows as queue time.
    assert record["queue_seconds"] >= 0.7


def test_a_crash_after_storing_leaves_a_job_that_runs(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    since = _last_message_id(chaos)
    answers = []
    for _ in range(CRASHES):
        with _intake_with(chaos, JOBRELAY_INTAKE_FAULT="exit_after_store"):
            answers.append(_submit(chaos, observe.embed_body(observe.unique_text("f"))))
    ids = _job_ids_since(chaos, since)
    final, waited = observe.wait_terminal(chaos, ids, SETTLE_SECONDS)
    figures.update(
        crashes=CRASHES,
        answered=sum(a is not None for a in answers),
        messages=len(ids),
        statuses={i: (r or {}).get("status") for i, r in final.items()},
        settle_seconds=round(waited, 1),
    )
    log.info("figures: %s", figures)

    assert answers == [None] * CRASHES
    assert len(ids) == CRASHES
    assert all(r is not None and r["status"] == "succeeded" for r in final.values()), final


def test_a_client_retrying_with_its_idempotency_key_after_a_crash_gets_one_job(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    text = observe.unique_text("k")
    key = {"Idempotency-Key": f"chaos-{uuid.uuid4().hex}"}
    since = _last_message_id(chaos)
    with _intake_with(chaos, JOBRELAY_INTAKE_FAULT="exit_after_publish"):
        crashed = _submit(chaos, observe.embed_body(text), **key)
    retried = _submit(chaos, observe.embed_body(text), **key)
    again = _submit(chaos, observe.embed_body(text), **key)
    assert retried is not None
    assert again is not None
    job_id = retried.json()["id"]
    final, _ = observe.wait_terminal(chaos, [job_id], SETTLE_SECONDS)
    record = final[job_id] or {}
    ids = _job_ids_since(chaos, since)
    crashed_ids = [i for i in ids if i != job_id]
    fenced, _ = _wait_fenced(chaos, crashed_ids)
    figures.update(
        first=None if crashed is None else crashed.status_code,
        retry=retried.status_code,
        again_same_job=again.json()["id"] == job_id,
        status=record.get("status"),
        model_calls=chaos.double.calls(text),
        crashed_attempt_fenced=fenced == crashed_ids,
    )
    log.info("figures: %s", figures)

    assert crashed is None
    assert retried.status_code == 202, retried.text
    assert again.json()["id"] == job_id  # the key names this job from now on
    assert record.get("status") == "succeeded"
    assert chaos.double.calls(text) == 1  # one job ran, once
    assert len(crashed_ids) == 1
    assert fenced == crashed_ids  # the crashed attempt's job can never be stored now
