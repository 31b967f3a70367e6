"""The benchmark's handle on the model double (bench/doubles/instant_model.py): set its
delay and limit, reset its counters, wait until it has answered a number of calls."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Spans:
    calls: int
    starts: list[float]  # monotonic, the double's clock (system-wide, so ours too)
    ends: list[float]

    @property
    def busy_window(self) -> float:
        return max(self.ends) - min(self.starts) if self.calls else 0.0


class ModelDouble:
    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=30)
        self._shape: tuple[float, int] = (0, 0)

    def set(self, delay_ms: float = 0, concurrency: int = 0, paused: bool = False) -> None:
        body = {"delay_ms": delay_ms, "concurrency": concurrency, "paused": paused}
        self._http.post(f"{self.url}/control", json=body).raise_for_status()
        self._shape = (delay_ms, concurrency)

    def pause(self, paused: bool) -> None:
        """Stall every call (paused) or let them all go, keeping the delay and limit."""
        self.set(*self._shape, paused=paused)

    def instant(self) -> None:
        self.set(0, 0)

    def reset(self) -> None:
        self._http.post(f"{self.url}/stats/reset").raise_for_status()

    def calls(self) -> int:
        count: int = self._http.get(f"{self.url}/stats", params={"spans": "0"}).json()["calls"]
        return count

    def spans(self) -> Spans:
        data = self._http.get(f"{self.url}/stats").json()
        spans = data["spans"]
        return Spans(data["calls"], [s[0] for s in spans], [s[1] for s in spans])

    def wait_calls(self, expected: int, timeout: float) -> bool:
        """Until the double has answered `expected` calls since its reset; False on timeout
        (the report then says the backlog did not drain in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.calls() >= expected:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._http.close()
