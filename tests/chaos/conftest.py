"""One chaos stack for the session, and the figures each case reports.

The stack is shared: starting it costs about 12 s, and every case leaves it whole (whatever
it killed is started again in a `finally`). Each case records its figures with `figures`;
with JOBRELAY_CHAOS_FIGURES set (`make chaos` sets it) they are written there as JSON at the
end, with each case's outcome, for tests/chaos/report.py to turn into docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.launcher import (
    ARRIVAL_GRACE_SECONDS,
    CHAOS_PROCESSING_TIMEOUT,
    CHAOS_REDELIVER_MS,
    LEASE_SETTINGS,
    POISON_MODEL_CALL_BUDGET,
    Launcher,
)

log = logging.getLogger(__name__)

_FIGURES: dict[str, dict[str, Any]] = {}
_OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="session")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path_factory.mktemp("chaos"))
    started = time.monotonic()
    try:
        launcher.start()
        _warm_up(launcher)
        _FIGURES.setdefault("_stack", {}).update(
            start_seconds=round(time.monotonic() - started, 1),
            processing_timeout=CHAOS_PROCESSING_TIMEOUT,
            redeliver_ms=CHAOS_REDELIVER_MS,
            lease_seconds=LEASE_SETTINGS["JOBRELAY_WORKER_CLAIM_LEASE_SECONDS"],
            hold_seconds=LEASE_SETTINGS["JOBRELAY_WORKER_DUPLICATE_HOLD_SECONDS"],
            arrival_grace_seconds=ARRIVAL_GRACE_SECONDS,
            model_call_budget=POISON_MODEL_CALL_BUDGET,
        )
        yield launcher
    finally:
        launcher.stop()


def _warm_up(launcher: Launcher, timeout: float = 60) -> None:
    """Until one job goes all the way through: a healthy sidecar may not have subscribed yet."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            resp = client.post(
                f"{launcher.url('intake')}/v1/jobs",
                json={"task": "embed", "input": {"text": "chaos warm-up"}},
            )
            if resp.status_code == 202:
                for _ in range(50):
                    if client.get(resp.json()["status_url"]).status_code == 200:
                        return
                    time.sleep(0.1)
    raise RuntimeError(f"no job went through in {timeout:.0f}s:\n{launcher.procs['worker'].tail()}")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """This case's figures, reported in docs/reliability.md under the test's name."""
    return _FIGURES.setdefault(request.node.name, {})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # The call phase decides; a setup that failed or skipped (no call phase) decides too.
    decisive = report.when == "call" or (report.outcome != "passed" and item.name not in _OUTCOMES)
    if "tests/chaos/" not in str(item.path) or not decisive:
        return report
    xfail = getattr(report, "wasxfail", None)
    _OUTCOMES[item.name] = "xfailed" if xfail is not None else report.outcome
    case = _FIGURES.setdefault(item.name, {})
    if xfail is not None:
        case["xfail_reason"] = xfail
    elif report.outcome == "failed":
        case["failure"] = report.longreprtext[-1500:]
    elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        case["skip_reason"] = report.longrepr[2]
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("JOBRELAY_CHAOS_FIGURES")
    if not target or not _OUTCOMES:
        return
    out = {
        "cases": {name: {"outcome": _OUTCOMES.get(name), **f} for name, f in _FIGURES.items()},
    }
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(out, indent=2, default=str))
    log.info("chaos figures written to %s", target)
