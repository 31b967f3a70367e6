"""Issue 5 (a) and (b): the worker, or its sidecar, dies mid-job and comes back.

What must hold: every accepted job ends terminal (none lost, none stuck `running`), none is
finished twice or leaves a terminal status, and a crash costs a job at most one extra model
call per crash that hit it (the claim keeps a redelivery from running the model beside a live
attempt). Model calls are counted at the model's door (the flaky-model double), per job text.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest

from apps.worker.settings import WorkerSettings
from tests.chaos import observe
from tests.chaos.launcher import LEASE_SETTINGS, Launcher

log = logging.getLogger(__name__)

JOBS = int(os.environ.get("JOBRELAY_CHAOS_JOBS", "500"))
KILLS = 5
# After the last crash, a job held by the dead worker is recovered once its claim's lease
# lapses and the broker hands its message out again (processingTimeout, shortened for the
# chaos stack in launcher.py); this bounds that wait.
DRAIN_SECONDS = float(os.environ.get("JOBRELAY_CHAOS_DRAIN_SECONDS", "150"))
# Each model call takes this much longer at the double, so that kills land on calls in flight.
CALL_DELAY_SECONDS = 0.05


# A crashed worker's jobs come back once their claim's lease lapses. With the production lease
# (CLAIM_LEASE_SECONDS, minutes) that wait, and the duplicate deliveries held for it in the
# sidecar's concurrency slots, do not fit in CI: the chaos stack shortens both through worker
# settings, and cannot until the worker has them.
_LEASE_SETTABLE = all(
    name.removeprefix("JOBRELAY_WORKER_").lower() in WorkerSettings.model_fields
    for name in LEASE_SETTINGS
)
needs_settable_lease = pytest.mark.xfail(
    not _LEASE_SETTABLE,
    reason=f"the worker has no settings {', '.join(LEASE_SETTINGS)}: with the built-in lease a "
    "crashed worker's jobs wait minutes (and stall the sidecar's slots) before a takeover",
    run=False,
    strict=True,
)


def _verdict(
    chaos: Launcher, jobs: list[observe.Job], final: dict[str, dict[str, Any] | None]
) -> dict[str, Any]:
    """The figures every crash case checks: lost, duplicated, left terminal, model calls."""
    ids = {j.id for j in jobs}
    terminal = observe.terminal_transitions(chaos)
    after = observe.changes_after_terminal(chaos)
    calls = observe.calls_per_job(chaos, jobs)
    return {
        "statuses": dict(Counter(r["status"] if r else "no record" for r in final.values())),
        "lost": sum(1 for r in final.values() if r is None or r["status"] not in observe.TERMINAL),
        "duplicated": sum(1 for j, seen in terminal.items() if j in ids and len(seen) > 1),
        "left_terminal": sum(1 for j in after if j in ids),
        "model_calls_per_job": {str(k): v for k, v in sorted(calls.items())},
        "jobs_with_more_than_one_call": sum(v for k, v in calls.items() if k > 1),
    }


def _kill_worker_repeatedly(
    chaos: Launcher, rng: random.Random, started: float, done: threading.Event
) -> list[float]:
    """SIGKILL the worker app KILLS times, at random moments, restarting it each time."""
    moments: list[float] = []
    for _ in range(KILLS):
        if done.wait(rng.uniform(0.5, 3.0)):
            break
        chaos.procs["worker"].kill(signal.SIGKILL)
        moments.append(round(time.monotonic() - started, 2))
        log.info("worker SIGKILLed at %.2f s", moments[-1])
        chaos.restart("worker")
    return moments


@needs_settable_lease
def test_jobs_survive_the_worker_being_sigkilled_five_times(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    _survive_five_sigkills(chaos, figures, "a")


def test_jobs_survive_the_go_worker_being_sigkilled_five_times(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    """The same case against the Go worker (apps/worker-go), on the same sidecar."""
    with chaos.go_worker():
        _survive_five_sigkills(chaos, figures, "g")


def _survive_five_sigkills(chaos: Launcher, figures: dict[str, Any], label: str) -> None:
    seed = int(os.environ.get("JOBRELAY_CHAOS_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    bodies = [observe.embed_body(observe.unique_text(f"{label}{n}")) for n in range(JOBS)]
    chaos.double.delay_seconds = CALL_DELAY_SECONDS
    started = time.monotonic()
    submitted: list[observe.Submitted] = []
    done = threading.Event()
    submitter = threading.Thread(target=lambda: submitted.append(observe.submit(chaos, bodies)))
    try:
        submitter.start()
        kills = _kill_worker_repeatedly(chaos, rng, started, done)
        submitter.join(timeout=300)
        jobs = submitted[0].jobs
        final, _ = observe.wait_terminal(chaos, [j.id for j in jobs], DRAIN_SECONDS)
    finally:
        done.set()
        chaos.double.delay_seconds = 0.0
    drained = time.monotonic() - started
    verdict = _verdict(chaos, jobs, final)
    figures.update(
        seed=seed,
        jobs=len(jobs),
        refused=dict(submitted[0].refused),
        kills=len(kills),
        kill_moments_seconds=kills,
        drain_seconds=round(drained, 1),
        drain_after_last_kill_seconds=round(drained - kills[-1], 1) if kills else None,
        **verdict,
    )
    log.info("figures: %s", figures)

    assert len(jobs) == JOBS, submitted[0].refused
    assert len(kills) == KILLS
    assert verdict["lost"] == 0, verdict["statuses"]
    assert verdict["duplicated"] == 0
    assert verdict["left_terminal"] == 0
    # At most once per attempt: a job gets one call, plus at most one per crash that hit it.
    assert max(int(k) for k in verdict["model_calls_per_job"]) <= 1 + KILLS
    assert observe.client_view(chaos, [j.id for j in jobs]).keys() <= {
        f"200 {s}" for s in observe.TERMINAL
    }


@needs_settable_lease
def test_jobs_complete_when_the_worker_sidecar_is_killed_mid_job(
    chaos: Launcher, figures: dict[str, Any]
) -> None:
    # Slow calls, so the sidecar dies while the worker holds several jobs mid-call.
    chaos.double.delay_seconds = 3.0
    bodies = [observe.embed_body(observe.unique_text(f"b{n}")) for n in range(16)]
    started = time.monotonic()
    try:
        jobs = observe.submit(chaos, bodies).jobs
        running = _wait_running(chaos, [j.id for j in jobs], at_least=4, timeout=30)
        chaos.procs["worker-daprd"].kill(signal.SIGKILL)
        killed_at = time.monotonic() - started
        time.sleep(2)
        chaos.restart("worker-daprd")
        final, _ = observe.wait_terminal(chaos, [j.id for j in jobs], DRAIN_SECONDS)
    finally:
        chaos.double.delay_seconds = 0.0
        if not chaos.procs["worker-daprd"].alive:
            chaos.restart("worker-daprd")
    verdict = _verdict(chaos, jobs, final)
    figures.update(
        jobs=len(jobs),
        running_when_killed=running,
        killed_at_seconds=round(killed_at, 1),
        drain_seconds=round(time.monotonic() - started, 1),
        **verdict,
    )
    log.info("figures: %s", figures)

    assert len(jobs) == len(bodies)
    assert verdict["lost"] == 0, verdict["statuses"]
    assert verdict["statuses"] == {"succeeded": len(jobs)}
    assert verdict["duplicated"] == 0
    assert verdict["left_terminal"] == 0


def _wait_running(chaos: Launcher, ids: list[str], at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = sum(
            1 for r in observe.records(chaos, ids).values() if r and r["status"] == "running"
        )
        if running >= at_least:
            return running
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} jobs running after {timeout:.0f}s")
