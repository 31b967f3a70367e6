"""Issue 5 (c), (d), (e): Redis restarted mid-run, a poison job among good ones, and the model
backend down for 30 s. Each runs on the real stack (tests/chaos/launcher.py) and records its
figures for docs/reliability.md."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any

import httpx

from tests.chaos import observe
from tests.chaos.launcher import POISON_MODEL_CALL_BUDGET, Launcher

log = logging.getLogger(__name__)

DRAIN_SECONDS = 120.0
# resiliency.yaml retries a delivery for about 50 s before the dead letter, and the worker
# retries each model call 3 times inside every delivery; the dead letter is one more delivery.
POISON_VISIBLE_WITHIN_SECONDS = 120.0
MODEL_DOWN_SECONDS = 30.0
# Long enough to outlast the outage with room to run; short enough that a job that merely
# waited for its deadline to lapse would show as expired or failed here.
DEADLINE_SECONDS = 150


def test_no_accepted_job_is_lost_when_redis_restarts_mid_run(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    bodies = [observe.embed_body(observe.unique_text(f"c{n}")) for n in range(150)]
    out: list[observe.Submitted] = []
    # Two submitters at a client's pace, so submits arrive before, during and after the
    # restart; whatever intake refused while Redis was down is not an accepted job.
    submitter = threading.Thread(target=lambda: out.append(observe.submit(chaos, bodies, 2)))
    started = time.monotonic()
    submitter.start()
    time.sleep(2)
    chaos.redis_stop()  # SHUTDOWN: the AOF is fsynced before Redis exits
    down_at = time.monotonic()
    try:
        time.sleep(3)
    finally:
        chaos.redis_start()
    down = time.monotonic() - down_at
    submitter.join(timeout=300)
    jobs = out[0].jobs
    final, waited = observe.wait_terminal(chaos, [j.id for j in jobs], DRAIN_SECONDS)
    lost = [i for i, r in final.items() if r is None or r["status"] not in observe.TERMINAL]
    figures.update(
        submitted=len(bodies),
        accepted=len(jobs),
        refused=dict(out[0].refused),
        redis_down_seconds=round(down, 1),
        lost=len(lost),
        missing_records=sum(1 for r in final.values() if r is None),
        statuses=Counter(r["status"] if r else "no record" for r in final.values()),
        errors=Counter(
            (r.get("error") or {}).get("code") for r in final.values() if r and r.get("error")
        ),
        drain_seconds=round(time.monotonic() - started, 1),
    )
    log.info("figures: %s", figures)

    assert jobs, "no job was accepted"
    assert not lost, f"{len(lost)} accepted jobs not terminal after {waited:.0f}s"


def test_a_poison_job_fails_visibly_in_bounded_time_while_others_flow(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    poison_text = observe.unique_text("d poison [fail:500:always]")
    good = [observe.embed_body(observe.unique_text(f"d{n}")) for n in range(40)]
    budget = {"JOBRELAY_WORKER_MAX_MODEL_CALLS_PER_JOB": str(POISON_MODEL_CALL_BUDGET)}
    with chaos.app_settings("worker", **budget):
        started = time.monotonic()
        poison = observe.submit(chaos, [observe.embed_body(poison_text)]).jobs
        assert len(poison) == 1
        jobs = observe.submit(chaos, good).jobs
        good_final, good_waited = observe.wait_terminal(chaos, [j.id for j in jobs], DRAIN_SECONDS)
        visible = _wait_failed_visible(chaos, poison[0].id, POISON_VISIBLE_WITHIN_SECONDS)
        seen_failed = time.monotonic() - started
    figures.update(
        good_jobs=len(jobs),
        good_statuses=Counter(r["status"] if r else "none" for r in good_final.values()),
        good_drain_seconds=round(good_waited, 1),
        poison_status=visible.get("status"),
        poison_error=(visible.get("error") or {}).get("code"),
        poison_attempts=visible.get("attempts"),
        poison_model_calls=chaos.double.calls(poison_text),
        model_call_budget=POISON_MODEL_CALL_BUDGET,
        time_to_visible_failure_seconds=round(seen_failed, 1),
    )
    log.info("figures: %s", figures)

    assert visible.get("status") == "failed", visible
    assert visible["error"]["message"], visible
    # The budget holds across deliveries: the job stops at it, and says so.
    assert chaos.double.calls(poison_text) <= POISON_MODEL_CALL_BUDGET
    assert visible["error"]["code"] == "model_call_budget_exhausted", visible
    assert all(r and r["status"] == "succeeded" for r in good_final.values())
    # The good jobs were not held up behind the poison one's retries.
    assert good_waited < seen_failed


def _wait_failed_visible(chaos: Launcher, job_id: str, timeout: float) -> dict[str, Any]:
    """The job as a client sees it once terminal (polling the status API), or as it is."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            resp = client.get(f"{chaos.url('status')}/v1/jobs/{job_id}")
            body = resp.json()
            if resp.status_code == 200:
                return body
            time.sleep(0.5)
    return body


def test_jobs_wait_out_a_30s_model_outage_and_finish_within_their_deadlines(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    bodies = [
        observe.embed_body(observe.unique_text(f"e{n}"), deadline_seconds=DEADLINE_SECONDS)
        for n in range(20)
    ]
    chaos.model_down()
    try:
        jobs = observe.submit(chaos, bodies).jobs
        time.sleep(MODEL_DOWN_SECONDS)
    finally:
        chaos.model_up()
    back = time.monotonic()
    final, waited = observe.wait_terminal(chaos, [j.id for j in jobs], DRAIN_SECONDS)
    late = [
        r["id"]
        for r in final.values()
        if r
        and r.get("finished_at")
        and r.get("deadline")
        and datetime.fromisoformat(r["finished_at"]) > datetime.fromisoformat(r["deadline"])
    ]
    figures.update(
        jobs=len(jobs),
        model_down_seconds=MODEL_DOWN_SECONDS,
        deadline_seconds=DEADLINE_SECONDS,
        statuses=Counter(r["status"] if r else "no record" for r in final.values()),
        errors=Counter(
            (r.get("error") or {}).get("code") for r in final.values() if r and r.get("error")
        ),
        drain_after_model_back_seconds=round(time.monotonic() - back, 1),
        finished_after_deadline=len(late),
        model_calls_per_job=dict(observe.calls_per_job(chaos, jobs)),
    )
    log.info("figures: %s", figures)

    assert len(jobs) == len(bodies)
    assert all(r and r["status"] == "succeeded" for r in final.values()), figures["statuses"]
    assert not late
    assert waited < DRAIN_SECONDS
