"""Where a job's time goes inside the Dapr sidecars: the latency histograms daprd exports
(Prometheus text on its metrics port), read before and after a run, so each hop's mean is
(sum after - sum before) / (count after - count before) for that run alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

# Histograms in milliseconds, and what each one times.
HOPS = {
    "dapr_grpc_io_server_server_latency": "app → sidecar gRPC call (whole call)",
    "dapr_component_state_latencies": "sidecar → Redis, state operation",
    "dapr_component_pubsub_egress_latencies": "sidecar → Redis, publish",
    "dapr_component_pubsub_ingress_latencies": "sidecar → app delivery, until the app answered",
    "dapr_http_client_roundtrip_latency": "sidecar → app HTTP round trip",
}
_LINE = re.compile(r"^(?P<name>[a-z_]+)_(?P<kind>sum|count)(?:\{(?P<labels>[^}]*)\})? (?P<v>\S+)$")
# Labels that only repeat what the row already says, or split one hop into many rows.
_DROPPED = {"app_id", "success", "grpc_server_status", "status", "process_status", "namespace"}

Key = tuple[str, str, str]  # (metric, labels, "sum" | "count")


def scrape(url: str) -> dict[Key, float]:
    text = httpx.get(url, timeout=5).text
    found: dict[Key, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None or match["name"] not in HOPS:
            continue
        labels = ",".join(
            part
            for part in (match["labels"] or "").split(",")
            if part and part.split("=")[0] not in _DROPPED
        )
        key = (match["name"], labels, match["kind"])
        found[key] = found.get(key, 0.0) + float(match["v"])
    return found


@dataclass(frozen=True)
class Hop:
    sidecar: str
    metric: str
    labels: str
    calls: float
    mean_ms: float


def hops(sidecar: str, before: dict[Key, float], after: dict[Key, float]) -> list[Hop]:
    """Each histogram series that moved between the two scrapes."""
    rows = []
    for (metric, labels, kind), count in after.items():
        if kind != "count":
            continue
        calls = count - before.get((metric, labels, "count"), 0.0)
        if calls <= 0:
            continue
        total = after[(metric, labels, "sum")] - before.get((metric, labels, "sum"), 0.0)
        rows.append(Hop(sidecar, metric, labels, calls, total / calls))
    return sorted(rows, key=lambda h: (h.metric, -h.calls))
