"""Percentiles of one run, and the median with its spread over repeated runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank: a value that was actually observed, so a
    p99 of 200 samples is the second-worst one, not an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Figure:
    """A figure over repeated runs: the median, with the lowest and highest run beside it."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, runs: Sequence[float]) -> Figure:
        clean = [r for r in runs if not math.isnan(r)]
        if not clean:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(clean), min(clean), max(clean), len(clean))

    def show(self, digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
        if self.runs == 0:
            return "n/a"
        m, lo, hi = (v * scale for v in (self.median, self.low, self.high))
        if self.runs == 1:
            return f"{m:.{digits}f}{unit}"
        return f"{m:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio(a: Figure, b: Figure) -> str:
    """a / b of the medians, as "2.3x"."""
    if a.runs == 0 or b.runs == 0 or b.median == 0:
        return "n/a"
    return f"{a.median / b.median:.2f}x"
