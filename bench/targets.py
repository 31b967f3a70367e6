"""The targets of the lean-pipeline issue, each with the measured value beside it and whether
it was met. Every figure is a median over the run's repeats; a target against another design
is judged against that design's median in the same run."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.report import Runs, Section
from bench.stats import Figure

MS = 1000.0


@dataclass(frozen=True)
class Target:
    what: str
    key: str
    limit: float
    at_least: bool  # True: the figure must be >= limit; False: <= limit
    show: Callable[[Figure], str]
    against: str | None = None  # a key whose median, times `factor`, is the limit instead
    factor: float = 1.0
    against_name: str = "Celery"
    # Shown beside the figure, not judged: what bounds it (a floor measured in the same run).
    context: tuple[str, str] | None = None  # (name, key)


def _ms(figure: Figure) -> str:
    return figure.show(2, MS, " ms")


def _pct(figure: Figure) -> str:
    return figure.show(1, 100, " %")


def _rate(figure: Figure) -> str:
    return figure.show(0, 1, " jobs/s")


TARGETS = [
    Target(
        "sustained completed jobs/s, instant model ≥ Celery's",
        "sustained/jobrelay/rate",
        math.nan,
        True,
        _rate,
        against="sustained/celery/rate",
    ),
    Target(
        "CPU per job, all but the load generator ≤ 1.5x Celery's",
        "sustained/jobrelay/cpu",
        math.nan,
        False,
        _ms,
        against="sustained/celery/cpu",
        factor=1.5,
    ),
    Target(
        "intake jobs/s at 64 clients ≥ Celery's",
        "intake/jobrelay/c64/rate",
        math.nan,
        True,
        _rate,
        against="intake/celery/c64/rate",
    ),
    Target(
        "intake p99 at 64 clients ≤ Celery's",
        "intake/jobrelay/c64/p99",
        math.nan,
        False,
        _ms,
        against="intake/celery/c64/p99",
    ),
    Target(
        "model efficiency, 200 ms model, limit 8 ≥ 99 %",
        "bound/jobrelay/efficiency",
        0.99,
        True,
        _pct,
        context=("floor, a bare client at the limit", "bound/floor/efficiency"),
    ),
    Target(
        "model efficiency with the shared limit ≥ 99 %",
        "bound/jobrelay-shared-limit/efficiency",
        0.99,
        True,
        _pct,
        context=("floor, a bare client at the limit", "bound/floor/efficiency"),
    ),
    Target(
        "client-visible completion, `Prefer: wait`, instant model, p50 ≤ 15 ms",
        "overhead/jobrelay/visible/p50",
        0.015,
        False,
        _ms,
    ),
    Target(
        "client-visible completion, event stream, instant model, p50 ≤ 15 ms",
        "overhead/jobrelay/stream/p50",
        0.015,
        False,
        _ms,
    ),
    Target(
        "quotas on cost ≤ 10 % of intake jobs/s (on ÷ off ≥ 0.90)",
        "security/jobrelay/rate",
        math.nan,
        True,
        _rate,
        against="security/jobrelay-quotas-off/rate",
        factor=0.9,
        against_name="quotas off",
    ),
    Target(
        "a new user's first try: `Prefer: wait` classify beyond its `model_seconds` ≤ 50 ms",
        "first/beyond_model",
        0.050,
        False,
        _ms,
    ),
]


def _verdict(target: Target, figure: Figure, limit: float) -> str:
    if figure.runs == 0 or math.isnan(limit):
        return "not measured"
    met = figure.median >= limit if target.at_least else figure.median <= limit
    return "met" if met else "**missed**"


def targets_section(runs: Runs, reliability: tuple[int, int]) -> Section:
    """`reliability`: (cases passed, cases) in docs/reliability.md's run."""
    rows = []
    for target in TARGETS:
        figure = runs.fig(target.key)
        if target.against:
            other = runs.fig(target.against)
            limit = other.median * target.factor
            beside = f" ({target.against_name}: {target.show(other)})"
        else:
            limit, beside = target.limit, ""
        if target.context:
            name, key = target.context
            beside += f" ({name}: {target.show(runs.fig(key))})"
        rows.append([target.what, target.show(figure) + beside, _verdict(target, figure, limit)])
    passed, cases = reliability
    rows.append(
        [
            "reliability: the chaos suite passes in full (`make chaos`)",
            f"{passed} of {cases} cases passed in docs/reliability.md's run",
            "met" if cases and passed == cases else "**missed**",
        ]
    )
    return Section(
        "Targets",
        "The lean-pipeline targets, measured on the defaults: jobrelay as `make run` starts "
        "it (publish-then-store delivery, tracing as configured by default, quotas on), beside "
        "FastAPI + Celery + Redis in the same run. Each figure is the median of the runs, with "
        "the lowest and highest in brackets. Where a target is missed, sections 3b, 3c and 6 "
        "say where the time goes.",
        ["target", "measured", "verdict"],
        rows,
    )
