"""The scenarios of issue 10, each run on every design it applies to, in the same run, with
the same job (an `embed` on the model double), repeated; each adds its report section.

Throughput and efficiency are read off the model double's side (the start and end of every
model call), the one place all three designs share; latencies are what the client saw.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
from openai import DefaultAioHttpClient

from bench import load, procs, profiling, sidecar
from bench.model import ModelDouble
from bench.report import Runs, Section
from bench.stacks import INFLIGHT, Design
from bench.stats import percentile, ratio
from jobrelay.contract import Priority
from jobrelay.lanes import Lanes

log = logging.getLogger(__name__)

MS = 1000.0
CONCURRENCIES = (1, 16, 64)
MODEL_DELAY_MS = 200.0
MODEL_LIMIT = INFLIGHT  # the model's own concurrency limit: the designs can just fill it
CEILING = MODEL_LIMIT / (MODEL_DELAY_MS / MS)  # jobs/s the limited model can complete
NAMES = {
    "jobrelay": "jobrelay",
    "celery": "FastAPI + Celery + Redis",
    "sync": "synchronous",
    "jobrelay-shared-limit": "jobrelay (shared limit)",
    "jobrelay-quotas-off": "jobrelay (quotas off)",
    "jobrelay-plaintext": "jobrelay (state unencrypted)",
}


@dataclass
class Context:
    workdir: Path
    repeats: int
    model: ModelDouble
    designs: dict[str, Design]
    runs: Runs = field(default_factory=Runs)
    sections: list[Section] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.0f}s"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _drain(ctx: Context, expected: int, timeout: float = 120.0) -> bool:
    drained = ctx.model.wait_calls(expected, timeout)
    if not drained:
        log.warning("model saw %d of %d calls after %.0fs", ctx.model.calls(), expected, timeout)
    return drained


def _cpu(design: Design) -> dict[str, float]:
    seen = {name: procs.cpu_seconds(pid) for name, pid in design.pids.items()}
    mine = os.times()
    seen["load generator"] = mine.user + mine.system
    return seen


def _name(design: str) -> str:
    return NAMES.get(design, design)


# 1. Intake --------------------------------------------------------------------------------


def intake(ctx: Context, duration: float = 3.0) -> None:
    for name, design in ctx.designs.items():
        ctx.model.instant()
        asyncio.run(load.closed_loop(design.submit_url, 16, 1.0))  # warm-up, not measured
        _drain(ctx, 0)
        for concurrency in CONCURRENCIES:
            for _ in range(ctx.repeats):
                ctx.model.reset()
                out = asyncio.run(load.closed_loop(design.submit_url, concurrency, duration))
                key = f"intake/{name}/c{concurrency}"
                ctx.runs.add(f"{key}/rate", out.rate)
                ctx.runs.add(f"{key}/p50", percentile(out.latencies, 50))
                ctx.runs.add(f"{key}/p99", percentile(out.latencies, 99))
                ctx.runs.add(
                    f"{key}/errors", out.answered - len(out.ids) + sum(out.errors.values())
                )
                _drain(ctx, len(out.ids))
            log.info("intake %s c=%d done (%s)", name, concurrency, ctx.elapsed())
    rows = []
    for name in ctx.designs:
        for c in CONCURRENCIES:
            key = f"intake/{name}/c{c}"
            rows.append(
                [
                    _name(name),
                    str(c),
                    ctx.runs.fig(f"{key}/rate").show(0),
                    ctx.runs.fig(f"{key}/p50").show(1, MS),
                    ctx.runs.fig(f"{key}/p99").show(1, MS),
                    ctx.runs.fig(f"{key}/errors").show(0),
                ]
            )
    ratios = [
        ["jobrelay ÷ Celery", *_ratios(ctx, "intake", "jobrelay", "celery")],
        ["jobrelay ÷ synchronous", *_ratios(ctx, "intake", "jobrelay", "sync")],
    ]
    ctx.sections.append(
        Section(
            "1. Intake: jobs accepted per second",
            f"Closed loop: N clients, each submitting its next job when the last is answered, "
            f"for {duration:.0f} s per run; the model double answers at once. For jobrelay and "
            "Celery the answer is the `202`; for the synchronous design it is the `200` with "
            "the result, since that design has nothing to answer before the model has run. The "
            "workers run meanwhile (the queue drains between runs), as they would in use.",
            ["design", "clients", "jobs/s", "p50 ms", "p99 ms", "errors"],
            rows + [[r[0], "64", *r[1:], ""] for r in ratios],
            [
                "Ratio rows: jobs/s ratio and p50/p99 ratios at 64 clients (above 1 is "
                "faster for jobs/s, slower for latencies)."
            ],
        )
    )


def _ratios(ctx: Context, scenario: str, a: str, b: str) -> list[str]:
    suffix = "" if scenario == "security" else "/c64"  # that scenario runs 64 clients only
    key_a, key_b = f"{scenario}/{a}{suffix}", f"{scenario}/{b}{suffix}"
    return [
        ratio(ctx.runs.fig(f"{key_a}/rate"), ctx.runs.fig(f"{key_b}/rate")),
        ratio(ctx.runs.fig(f"{key_a}/p50"), ctx.runs.fig(f"{key_b}/p50")),
        ratio(ctx.runs.fig(f"{key_a}/p99"), ctx.runs.fig(f"{key_b}/p99")),
    ]


# 2. End-to-end overhead -------------------------------------------------------------------


async def _sse_completion(http: httpx.AsyncClient, design: Design, i: int) -> float:
    """Submit, then follow the job's event stream until its final event: client-visible."""
    start = time.perf_counter()
    resp = await http.post(design.submit_url, json=load.job_body(i))
    url = f"{design.status_url(resp.json()['id'])}/events"
    async with http.stream("GET", url) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:") and line.split(":", 1)[1].strip() in (
                "succeeded",
                "failed",
            ):
                break
    return time.perf_counter() - start


async def _poll_completion(http: httpx.AsyncClient, design: Design, i: int) -> dict[str, Any]:
    """Submit, then poll every 2 ms until the result is there (the only way Celery's API has)."""
    start = time.perf_counter()
    resp = await http.post(design.submit_url, json=load.job_body(i))
    url = design.status_url(resp.json()["id"])
    while True:
        answer = await http.get(url)
        if answer.status_code == 200:
            record: dict[str, Any] = answer.json()
            record["_client"] = time.perf_counter() - start
            return record
        await asyncio.sleep(0.002)


async def _overhead_run(design: Design, jobs: int, first: int) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {"stored": [], "visible": [], "stream": []}
    async with load.client(4) as http:
        for i in range(first, first + jobs):
            if design.name == "celery":
                record = await _poll_completion(http, design, i)
                seen["visible"].append(record["_client"])
            else:
                headers = {"Prefer": "wait=10"} if design.name == "jobrelay" else {}
                start = time.perf_counter()
                resp = await http.post(design.submit_url, json=load.job_body(i), headers=headers)
                seen["visible"].append(time.perf_counter() - start)
                record = resp.json()
                if resp.status_code != 200:
                    raise RuntimeError(f"{design.name}: job not done: {resp.status_code}")
            seen["stored"].append(_ts(record["finished_at"]) - _ts(record["created_at"]))
        if design.name == "jobrelay":
            for i in range(first, first + jobs // 2):
                seen["stream"].append(await _sse_completion(http, design, i))
    return seen


def overhead(ctx: Context, jobs: int = 100) -> None:
    ctx.model.instant()
    for name, design in ctx.designs.items():
        for rep in range(ctx.repeats):
            ctx.model.reset()
            seen = asyncio.run(_overhead_run(design, jobs, rep * jobs))
            spans = ctx.model.spans()
            model_time = statistics.mean(
                e - s for s, e in zip(spans.starts, spans.ends, strict=True)
            )
            for what, values in seen.items():
                if not values:
                    continue
                net = [v - model_time for v in values]
                ctx.runs.add(f"overhead/{name}/{what}/p50", percentile(net, 50))
                ctx.runs.add(f"overhead/{name}/{what}/p99", percentile(net, 99))
            ctx.runs.add(f"overhead/{name}/model", model_time)
        log.info("overhead %s done (%s)", name, ctx.elapsed())
    rows = []
    labels = {
        "stored": "submit → result stored (server clocks)",
        "visible": "client-visible completion",
        "stream": "client-visible, event stream",
    }
    how = {
        "jobrelay": "`Prefer: wait=10`",
        "celery": "polling every 2 ms",
        "sync": "the request itself",
    }
    for name in ctx.designs:
        for what, label in labels.items():
            key = f"overhead/{name}/{what}"
            if not ctx.runs.values.get(f"{key}/p50"):
                continue
            shown = f"{label} ({how[name]})" if what == "visible" else label
            rows.append(
                [
                    _name(name),
                    shown,
                    ctx.runs.fig(f"{key}/p50").show(2, MS),
                    ctx.runs.fig(f"{key}/p99").show(2, MS),
                ]
            )
    ctx.sections.append(
        Section(
            "2. End-to-end overhead (instant model, one job at a time)",
            f"{jobs} jobs one after another per run, each submitted when the last is done; the "
            "model double's own time per call (measured inside it, "
            f"{ctx.runs.fig('overhead/jobrelay/model').show(3, MS)} ms) is subtracted. "
            "'Stored' is `finished_at - created_at` of the job record: from intake's accepting "
            "the job to the worker's stamping the result it then writes. 'Client-visible' is "
            "the client's own clock from sending the submit to holding the result: jobrelay "
            "through `Prefer: wait` (one request), and through the SSE stream "
            f"(submit, then `GET /events` until the final event; {jobs // 2} jobs a run); "
            "Celery's API has only polling.",
            ["design", "measured", "p50 ms", "p99 ms"],
            rows,
        )
    )


# 3. Sustained throughput ------------------------------------------------------------------


@dataclass
class Drained:
    submitted: int
    completed: int
    seconds: float  # first submit to last model call's end
    cpu: dict[str, float]
    submit: load.Outcome


def _push_through(
    ctx: Context, design: Design, jobs: int, clients: int, first: int, timeout: float = 180.0
) -> Drained:
    """Submit `jobs` jobs as fast as `clients` clients can, then wait until every one has
    reached the model; CPU seconds of each process over the whole stretch."""
    ctx.model.reset()
    cpu_before = _cpu(design)
    start = time.monotonic()
    out = asyncio.run(load.closed_loop(design.submit_url, clients, 600, jobs, first=first))
    _drain(ctx, len(out.ids), timeout)
    spans = ctx.model.spans()
    cpu_after = _cpu(design)
    cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
    last = max(spans.ends) if spans.ends else time.monotonic()
    return Drained(len(out.ids), spans.calls, last - start, cpu, out)


def sustained(ctx: Context, jobs: int = 1500, clients: int = 32) -> None:
    ctx.model.instant()
    cpu_rows: list[list[str]] = []
    hop_rows: list[list[str]] = []
    for name, design in ctx.designs.items():
        per_job: dict[str, list[float]] = {}
        for rep in range(ctx.repeats):
            before = {app: sidecar.scrape(url) for app, url in design.metrics.items()}
            run = _push_through(ctx, design, jobs, clients, 10_000_000 + rep * jobs)
            ctx.runs.add(f"sustained/{name}/rate", run.completed / run.seconds)
            ctx.runs.add(f"sustained/{name}/lost", run.submitted - run.completed)
            served = sum(v for p, v in run.cpu.items() if p != "load generator")
            ctx.runs.add(f"sustained/{name}/cpu", served / max(run.completed, 1))
            for proc, seconds in run.cpu.items():
                per_job.setdefault(proc, []).append(seconds / max(run.completed, 1))
            if rep == 0 and design.metrics:
                hop_rows += _hop_rows(design, before, run.completed)
        cpu_rows += [
            [_name(name), proc, f"{statistics.median(v) * MS:.2f}"]
            for proc, v in sorted(per_job.items(), key=lambda kv: -statistics.median(kv[1]))
        ]
        total = sum(statistics.median(v) for p, v in per_job.items() if p != "load generator")
        cpu_rows.append([_name(name), "**all but the load generator**", f"**{total * MS:.2f}**"])
        log.info("sustained %s done (%s)", name, ctx.elapsed())
    rows = [
        [
            _name(n),
            ctx.runs.fig(f"sustained/{n}/rate").show(0),
            ratio(ctx.runs.fig(f"sustained/{n}/rate"), ctx.runs.fig("sustained/celery/rate")),
            ratio(ctx.runs.fig(f"sustained/{n}/rate"), ctx.runs.fig("sustained/sync/rate")),
            ctx.runs.fig(f"sustained/{n}/lost").show(0),
        ]
        for n in ctx.designs
    ]
    ctx.sections.append(
        Section(
            "3a. Sustained throughput, instant model",
            f"{jobs} jobs submitted by {clients} clients as fast as each design takes them; "
            "completed jobs/s = jobs / (first submit → last model call's end). With the model "
            "free, this is the pipeline's own ceiling on these two cores.",
            ["design", "completed jobs/s", "÷ Celery", "÷ synchronous", "jobs missing"],
            rows,
        )
    )
    ctx.sections.append(
        Section(
            "3b. Where the CPU goes, per job (instant model)",
            "CPU time (user + system, from /proc) each process used over the runs above, "
            "divided by the jobs completed; median of the runs. Two cores give 2,000 ms of CPU "
            "per second, so the total bounds throughput at about 2,000 ÷ total jobs/s.",
            ["design", "process", "CPU ms per job"],
            cpu_rows,
        )
    )
    if hop_rows:
        ctx.sections.append(
            Section(
                "3c. The sidecar hops (jobrelay, first run of 3a)",
                "From daprd's own latency histograms (metrics port), differenced over the run: "
                "every call a sidecar served or made, how many per job, and its mean. The "
                "difference between the gRPC call and the Redis operation inside it is the "
                "sidecar's own cost per hop.",
                ["sidecar", "hop", "detail", "per job", "mean ms"],
                hop_rows,
            )
        )


def _hop_rows(design: Design, before: dict[str, dict[Any, float]], jobs: int) -> list[list[str]]:
    rows = []
    for app, url in design.metrics.items():
        for hop in sidecar.hops(app, before[app], sidecar.scrape(url)):
            if hop.calls < jobs * 0.2:
                continue  # health checks and the like
            rows.append(
                [
                    app,
                    sidecar.HOPS[hop.metric],
                    hop.labels.replace('"', "") or "-",
                    f"{hop.calls / jobs:.2f}",
                    f"{hop.mean_ms:.2f}",
                ]
            )
    return rows


async def _bare_client(url: str, jobs: int) -> None:
    """`jobs` embeddings through the openai SDK (the worker's transport and call) with
    exactly MODEL_LIMIT in flight and nothing else to do: the most any client that keeps to
    the limit gets from the model double on this machine."""
    client = openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key="none", max_retries=0, http_client=DefaultAioHttpClient()
    )
    gate = asyncio.Semaphore(MODEL_LIMIT)

    async def one(i: int) -> None:
        async with gate:
            body = {"model": "m", "input": [f"floor {i}"], "encoding_format": "base64"}
            await client.post("/embeddings", cast_to=httpx2.Response, body=body)

    try:
        await asyncio.gather(*(one(i) for i in range(jobs)))
    finally:
        await client.close()


def model_bound(ctx: Context, extra: dict[str, Callable[[], Design]], jobs: int = 400) -> None:
    """Efficiency = achieved ÷ theoretical with a 200 ms model that takes MODEL_LIMIT calls."""
    ctx.model.set(MODEL_DELAY_MS, MODEL_LIMIT)
    for _ in range(ctx.repeats):
        ctx.model.reset()
        asyncio.run(_bare_client(ctx.model.url, jobs))
        spans = ctx.model.spans()
        ctx.runs.add("bound/floor/rate", spans.calls / spans.busy_window)
        ctx.runs.add("bound/floor/efficiency", spans.calls / spans.busy_window / CEILING)
    designs = dict(ctx.designs)
    failed: list[str] = []
    for label, start in extra.items():
        try:
            designs[label] = start()
        except RuntimeError as exc:
            # A variant that will not start costs its rows, not the whole report.
            log.warning("%s did not start: %s", label, exc)
            failed.append(f"{_name(label)} did not start in this run: {str(exc)[:200]}")
    try:
        for name, design in designs.items():
            ctx.model.set(MODEL_DELAY_MS, MODEL_LIMIT)
            for rep in range(ctx.repeats):
                clients = 64 if name == "sync" else 16
                run = _push_through(ctx, design, jobs, clients, 20_000_000 + rep * jobs)
                spans = ctx.model.spans()
                achieved = spans.calls / spans.busy_window if spans.calls else 0.0
                ctx.runs.add(f"bound/{name}/rate", achieved)
                ctx.runs.add(f"bound/{name}/efficiency", achieved / CEILING)
                ctx.runs.add(f"bound/{name}/intake_p99", percentile(run.submit.latencies, 99))
            log.info("model-bound %s done (%s)", name, ctx.elapsed())
    finally:
        for label in extra:
            if label in designs:
                designs[label].stop()
        ctx.model.instant()
    rows = [
        [
            _name(n),
            ctx.runs.fig(f"bound/{n}/rate").show(1),
            ctx.runs.fig(f"bound/{n}/efficiency").show(1, 100, " %"),
            ctx.runs.fig(f"bound/{n}/intake_p99").show(0, MS),
        ]
        for n in designs
    ]
    rows.append(
        [
            f"floor: a bare client, {MODEL_LIMIT} in flight",
            ctx.runs.fig("bound/floor/rate").show(1),
            ctx.runs.fig("bound/floor/efficiency").show(1, 100, " %"),
            "",
        ]
    )
    ctx.sections.append(
        Section(
            "3d. Sustained throughput, 200 ms model behind a concurrency limit",
            f"The model double takes {MODEL_DELAY_MS:.0f} ms per call and at most "
            f"{MODEL_LIMIT} calls at once (more wait in it): the ceiling is {CEILING:.0f} "
            f"jobs/s. {jobs} jobs are submitted at once; achieved = calls ÷ (first call's "
            "start → last call's end), efficiency = achieved ÷ ceiling. The synchronous design "
            "gets 64 clients, so its requests queue at the model too. 'submit p99' is how long "
            "clients waited for the answer to their submit meanwhile.",
            ["design", "completed jobs/s", "efficiency", "submit p99 ms"],
            rows,
            [
                "floor: the openai SDK with the worker's transport and call, keeping exactly "
                f"{MODEL_LIMIT} calls in flight and doing nothing else (bench/scenarios.py "
                "`_bare_client`): the most a client that keeps to the limit gets here. Each "
                "time a call ends, the next one's request must travel to the model before it "
                "starts; a design whose requests queue at the model (the synchronous one, with "
                "64 clients) does not pay that hand-over.",
                "jobrelay (shared limit): the same stack with the model profile's "
                f"`max_concurrency: {MODEL_LIMIT}`, the limit shared by all worker replicas "
                "through the state store (apps/worker/slots.py), on top of the worker's own.",
                *failed,
            ]
            if extra
            else [],
        )
    )


# 8. What security costs -------------------------------------------------------------------


def security_cost(ctx: Context, variants: dict[str, Callable[[], Design]], seconds: float) -> None:
    """Intake at 64 clients on jobrelay as benchmarked (the defaults: state encrypted, quotas
    on) beside one stack with quotas off and one with the state store unencrypted. One variant
    runs at a time, beside the same idle stacks as the baseline."""
    names = ["jobrelay"]
    failed: list[str] = []
    _measure_intake(ctx, "jobrelay", ctx.designs["jobrelay"], seconds)
    for label, start in variants.items():
        try:
            design = start()
        except RuntimeError as exc:
            log.warning("%s did not start: %s", label, exc)
            failed.append(f"{_name(label)} did not start in this run: {str(exc)[:200]}")
            continue
        try:
            _measure_intake(ctx, label, design, seconds)
            names.append(label)
        finally:
            design.stop()
    rows = [
        [
            _name(n),
            ctx.runs.fig(f"security/{n}/rate").show(0),
            ctx.runs.fig(f"security/{n}/p50").show(1, MS),
            ctx.runs.fig(f"security/{n}/p99").show(1, MS),
            ctx.runs.fig(f"security/{n}/errors").show(0),
        ]
        for n in names
    ]
    rows += [
        [f"{_name(n)} ÷ jobrelay", *_ratios(ctx, "security", n, "jobrelay"), ""] for n in names[1:]
    ]
    ctx.sections.append(
        Section(
            "8. What security costs: quotas and encryption at rest",
            f"Intake's closed loop at 64 clients, {seconds:.0f} s per run, on three jobrelay "
            "stacks: as everywhere above (the defaults: state encrypted, quotas on with limits "
            "far above the load, so every submit is charged to its tenant's ledger and none is "
            "refused), with quotas off, and with the state store unencrypted.",
            ["design", "jobs/s", "p50 ms", "p99 ms", "errors"],
            rows,
            [
                "Ratio rows: jobs/s, p50 and p99 of the variant ÷ the default stack (above 1 "
                "is faster for jobs/s, slower for latencies).",
                *failed,
            ],
        )
    )


def _measure_intake(ctx: Context, name: str, design: Design, seconds: float) -> None:
    ctx.model.instant()
    asyncio.run(load.closed_loop(design.submit_url, 64, 2.0))  # warm-up, not measured
    _drain(ctx, 0)
    for _ in range(ctx.repeats):
        out = asyncio.run(load.closed_loop(design.submit_url, 64, seconds))
        ctx.runs.add(f"security/{name}/rate", out.rate)
        ctx.runs.add(f"security/{name}/p50", percentile(out.latencies, 50))
        ctx.runs.add(f"security/{name}/p99", percentile(out.latencies, 99))
        errors = out.answered - len(out.ids) + sum(out.errors.values())
        ctx.runs.add(f"security/{name}/errors", errors)
        _drain(ctx, len(out.ids))
    log.info("security %s done (%s)", name, ctx.elapsed())


# 4. Overload ------------------------------------------------------------------------------


async def _statuses(design: Design, ids: list[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    gate = asyncio.Semaphore(32)
    async with load.client(32) as http:

        async def one(job_id: str) -> None:
            async with gate:
                resp = await http.get(design.status_url(job_id))
                found[resp.json().get("status", str(resp.status_code))] += 1

        await asyncio.gather(*(one(i) for i in ids))
    return found


def overload(ctx: Context, burst_seconds: float = 2.0, repeats: int = 2) -> None:
    rate = 10 * CEILING
    count = int(rate * burst_seconds)
    for name, design in ctx.designs.items():
        ctx.model.set(MODEL_DELAY_MS, MODEL_LIMIT)
        for rep in range(repeats):
            ctx.model.reset()
            calm = asyncio.run(load.open_loop(design.submit_url, CEILING / 4, 30))
            _drain(ctx, len(calm.ids), 30)
            ctx.model.reset()
            start = time.monotonic()
            burst = asyncio.run(
                load.open_loop(design.submit_url, rate, count, first=30_000_000 + rep * count)
            )
            drained = _drain(ctx, len(burst.ids), 60 + 2 * count / CEILING)
            spans = ctx.model.spans()
            key = f"overload/{name}"
            ctx.runs.add(f"{key}/calm_p99", percentile(calm.latencies, 99))
            ctx.runs.add(f"{key}/burst_p50", percentile(burst.latencies, 50))
            ctx.runs.add(f"{key}/burst_p99", percentile(burst.latencies, 99))
            ctx.runs.add(f"{key}/accepted", len(burst.ids))
            ctx.runs.add(f"{key}/drain", (max(spans.ends) - start) if drained else math.nan)
            ctx.runs.add(f"{key}/duplicates", max(spans.calls - len(burst.ids), 0))
            if design.name != "sync":
                statuses = asyncio.run(_statuses(design, burst.ids))
                ctx.runs.add(f"{key}/succeeded", statuses["succeeded"])
            else:
                ctx.runs.add(f"{key}/succeeded", burst.statuses[200])
            ctx.runs.add(f"{key}/errors", sum(burst.errors.values()))
        log.info("overload %s done (%s)", name, ctx.elapsed())
    ctx.model.instant()
    rows = []
    for n in ctx.designs:
        key = f"overload/{n}"
        rows.append(
            [
                _name(n),
                ctx.runs.fig(f"{key}/calm_p99").show(1, MS),
                ctx.runs.fig(f"{key}/burst_p50").show(1, MS),
                ctx.runs.fig(f"{key}/burst_p99").show(1, MS),
                f"{ctx.runs.fig(f'{key}/succeeded').show(0)} of "
                f"{ctx.runs.fig(f'{key}/accepted').show(0)}",
                ctx.runs.fig(f"{key}/duplicates").show(0),
                ctx.runs.fig(f"{key}/drain").show(1),
            ]
        )
    ctx.sections.append(
        Section(
            "4. Overload: a burst of 10x capacity",
            f"Capacity is the model-bound ceiling of 3d ({CEILING:.0f} jobs/s). First a calm "
            f"load (open loop, {CEILING / 4:.0f} jobs/s, 30 jobs), then a burst at "
            f"{rate:.0f} jobs/s for {burst_seconds:.1f} s ({count} jobs, open loop: sent on "
            "schedule whatever the answers do). Intake p99 should stay near the calm one; the "
            "backlog must drain (last model call's end, from the burst's start; ideal "
            f"{count / CEILING:.0f} s) and every accepted job must end `succeeded`, checked by "
            f"reading every one back, each reaching the model once. {repeats} runs.",
            [
                "design",
                "calm submit p99 ms",
                "burst submit p50 ms",
                "burst submit p99 ms",
                "succeeded of accepted",
                "extra model calls",
                "drained in s",
            ],
            rows,
        )
    )


# 5. Backlog -------------------------------------------------------------------------------


async def _bulk_load(
    design: Design, jobs: int, batch: int, budget: float, sample: list[str]
) -> tuple[int, float]:
    """Queue `jobs` jobs through intake's sidecar with Dapr's bulk state and bulk publish APIs:
    the same records and messages intake writes, a thousand per call. Stops at `budget`
    seconds, returning how many it queued."""
    from jobrelay.contract import JobInput, JobMessage, JobRecord

    # Published after their records here (records first, a thousand at a time): the order
    # intake uses (publish, then store) matters for crashes, which this load does not have.

    sidecar_http = design.sidecar_http["intake"]
    queued = 0
    start = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as http:
        while queued < jobs and time.monotonic() - start < budget:
            n = min(batch, jobs - queued)
            records = [
                JobRecord.new("embed", JobInput(text=f"backlog job {queued + i}"), {}, {})
                for i in range(n)
            ]
            # As JSON text: daprd 1.18's HTTP API formats any other value with Go's %v before
            # it encrypts it.
            state = [{"key": f"job:{r.id}", "value": r.model_dump_json()} for r in records]
            resp = await http.post(f"{sidecar_http}/v1.0/state/statestore", json=state)
            resp.raise_for_status()
            entries = [
                {
                    "entryId": str(i),
                    "event": JobMessage(job_id=r.id, task=r.task, sent_at=r.created_at).model_dump(
                        mode="json"
                    ),
                    "contentType": "application/json",
                }
                for i, r in enumerate(records)
            ]
            resp = await http.post(
                f"{sidecar_http}/v1.0-alpha1/publish/bulk/pubsub/jobs", json=entries
            )
            resp.raise_for_status()
            sample.append(records[0].id)
            queued += n
    return queued, time.monotonic() - start


async def _get_latency(design: Design, ids: list[str], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    async with load.client(clients) as http:

        async def run() -> None:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                await http.get(design.status_url(random.choice(ids)))  # noqa: S311
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(run() for _ in range(clients)))
    return latencies


def _memory(design: Design) -> dict[str, int]:
    return {name: procs.rss_bytes(pid) for name, pid in design.pids.items()}


def _backlog_latencies(ctx: Context, design: Design, state: str, ids: list[str]) -> None:
    for _ in range(ctx.repeats):
        submit = asyncio.run(load.closed_loop(design.submit_url, 16, 2.0, first=40_000_000))
        ctx.runs.add(f"backlog/{state}/submit_p50", percentile(submit.latencies, 50))
        ctx.runs.add(f"backlog/{state}/submit_p99", percentile(submit.latencies, 99))
        ctx.runs.add(f"backlog/{state}/submit_rate", submit.rate)
        gets = asyncio.run(_get_latency(design, ids, 16, 2.0))
        ctx.runs.add(f"backlog/{state}/get_p50", percentile(gets, 50))
        ctx.runs.add(f"backlog/{state}/get_p99", percentile(gets, 99))


def _lag(design: Design) -> int:
    """Entries of the bench tenant's lane (jobrelay.lanes; all its jobs are `normal`) the
    worker's consumer group has not read yet (Redis 7's `lag`)."""
    assert design.redis is not None
    lane = Lanes().topic(Priority.NORMAL, "default")
    fields = design.redis.cli("xinfo", "groups", lane).split()
    for name, value in itertools.pairwise(fields):
        if name == "lag" and value.isdigit():
            return int(value)
    return -1


def backlog(ctx: Context, jobs: int = 100_000, budget: float = 150.0) -> None:
    design = ctx.designs["jobrelay"]
    assert design.redis is not None
    ctx.model.instant()
    ids = asyncio.run(load.closed_loop(design.submit_url, 8, 60, 200, first=50_000_000)).ids
    _drain(ctx, 0)
    time.sleep(1)
    _backlog_latencies(ctx, design, "empty", ids)
    memory_before, redis_before = _memory(design), design.redis.used_memory()
    # Stall the model, so what is loaded stays queued: the worker holds its in-flight calls
    # and its sidecar its prefetch, and everything else waits in the stream.
    ctx.model.pause(True)
    sample: list[str] = []
    queued, seconds = asyncio.run(_bulk_load(design, jobs, 1000, budget, sample))
    log.info("backlog: %d jobs queued in %.0fs (%s)", queued, seconds, ctx.elapsed())
    time.sleep(2)
    lag, redis_after = _lag(design), design.redis.used_memory()
    memory_loaded = _memory(design)
    _backlog_latencies(ctx, design, "loaded", sample)
    ctx.model.reset()
    ctx.model.pause(False)
    drain_seconds = 15.0
    time.sleep(drain_seconds)
    drain_rate = ctx.model.calls() / drain_seconds
    memory_draining = _memory(design)
    ctx.model.reset()
    rows = [
        [
            state,
            ctx.runs.fig(f"backlog/{state}/submit_rate").show(0),
            ctx.runs.fig(f"backlog/{state}/submit_p50").show(1, MS),
            ctx.runs.fig(f"backlog/{state}/submit_p99").show(1, MS),
            ctx.runs.fig(f"backlog/{state}/get_p50").show(1, MS),
            ctx.runs.fig(f"backlog/{state}/get_p99").show(1, MS),
        ]
        for state in ("empty", "loaded")
    ]
    mib = 1024 * 1024
    memory_rows = [
        [
            proc,
            f"{memory_before[proc] / mib:.0f}",
            f"{memory_loaded[proc] / mib:.0f}",
            f"{memory_draining[proc] / mib:.0f}",
        ]
        for proc in memory_before
    ]
    per_job = (redis_after - redis_before) / max(queued, 1)
    scaled = (
        ""
        if queued >= jobs
        else (
            f" Scaled down: only {queued:,} of {jobs:,} could be queued within the {budget:.0f} s "
            "budget this scenario has inside the 15-minute run."
        )
    )
    ctx.sections.append(
        Section(
            "5. Backlog (jobrelay)",
            f"{queued:,} jobs queued in {seconds:.0f} s with the model stalled (so they stay "
            "queued), through intake's sidecar with Dapr's bulk state and bulk publish APIs: "
            "the same records and messages intake writes, a thousand per call, because "
            "submitting them one by one at intake's rate would take most of the run's 15 "
            f"minutes alone.{scaled} The worker's consumer group then had {lag:,} entries "
            f"unread. Redis grew by {(redis_after - redis_before) / mib:.0f} MiB "
            f"({per_job:.0f} bytes per queued job: its record and its stream entry). Then "
            "16 clients submit (2 s) and read random queued jobs (2 s), per run, against an "
            f"empty queue and the loaded one. Released, the worker drained {drain_rate:.0f} "
            f"jobs/s over {drain_seconds:.0f} s; at that rate the last of the backlog would "
            f"wait {queued / max(drain_rate, 1e-9) / 60:.1f} min (the queue is first in, "
            "first out), so a backlog costs waiting time, not speed.",
            [
                "queue",
                "submit jobs/s",
                "submit p50 ms",
                "submit p99 ms",
                "GET p50 ms",
                "GET p99 ms",
            ],
            rows,
        )
    )
    ctx.sections.append(
        Section(
            "5b. Resident memory with the backlog (MiB)",
            "RSS of every process of the jobrelay stack (Redis's includes its allocator's "
            "slack): empty, with the backlog queued, and after 15 s of draining.",
            ["process", "empty", "backlog queued", "draining"],
            memory_rows,
        )
    )


# Profiles ---------------------------------------------------------------------------------


def profile(ctx: Context, seconds: int = 8) -> None:
    """py-spy on intake and worker while 64 clients submit (a run of its own: sampling slows
    the apps, so nothing measured above ran under it)."""
    design = ctx.designs["jobrelay"]
    ctx.model.instant()
    ctx.model.reset()
    recorders = {}
    for app in ("intake", "worker"):
        raw = ctx.workdir / f"profile-{app}.txt"
        recorders[app] = (profiling.record(design.pids[app], seconds, raw), raw)
    out = asyncio.run(load.closed_loop(design.submit_url, 64, seconds + 1))
    for app, (recorder, raw) in recorders.items():
        _, err = recorder.communicate(timeout=60)
        if recorder.returncode != 0:
            log.warning("py-spy on %s failed: %s", app, err.decode(errors="replace")[-500:])
            continue
        found = profiling.summarize(app, raw)
        rows = [
            [f"{i + 1}", f"`{name}`", f"{pct:.1f}", f"`{leaf}`", f"{leaf_pct:.1f}"]
            for i, ((name, pct), (leaf, leaf_pct)) in enumerate(
                zip(found.inclusive, found.leaf, strict=False)
            )
        ]
        ctx.sections.append(
            Section(
                f"6. Profile: {app} (py-spy, jobrelay at 64 clients)",
                f"{found.samples} samples at 100 Hz over {seconds} s of the thread holding the "
                f"GIL (Python CPU time), while 64 clients submitted ({out.rate:.0f} jobs/s "
                "under the profiler). Left: share of samples with the function anywhere on the "
                "stack; right: share where it was the function running.",
                ["#", "on the stack", "%", "running", "%"],
                rows,
            )
        )
    _drain(ctx, len(out.ids))
    log.info("profiles done (%s)", ctx.elapsed())


# 7. A new user's first try ----------------------------------------------------------------

FIRST_TRY_TEXTS = (
    "Terrible. It broke after one day and support never answered.",
    "Absolutely love it, works perfectly.",
    "It arrived on Tuesday.",
)


async def _first_tries(design: Design, jobs: int) -> list[tuple[float, float]]:
    """(client seconds, the record's model_seconds) of `jobs` classify jobs, one at a time,
    each with `Prefer: wait` as the README's first command sends it."""
    seen = []
    async with load.client(1) as http:
        for i in range(jobs):
            body = {
                "task": "classify",
                "input": {"text": FIRST_TRY_TEXTS[i % len(FIRST_TRY_TEXTS)]},
                "params": {"labels": ["positive", "negative", "neutral"]},
            }
            start = time.perf_counter()
            resp = await http.post(design.submit_url, json=body, headers={"Prefer": "wait=20"})
            took = time.perf_counter() - start
            record = resp.json()
            if resp.status_code != 200 or record["status"] != "succeeded":
                raise RuntimeError(f"first try: {resp.status_code} {record.get('status')}")
            seen.append((took, record["model_seconds"]))
    return seen


def first_try(ctx: Context, start: Callable[[int], Design], jobs: int = 20) -> None:
    """`make run` as a new user gets it (the built-in local model, no settings), and the
    README's classify with `Prefer: wait`: how long beyond the model's own time."""
    for rep in range(ctx.repeats):
        design = start(rep)  # a fresh stack per run: the first job is a first job
        try:
            seen = asyncio.run(_first_tries(design, jobs))
        finally:
            design.stop()
        ctx.runs.add("first/beyond_model", statistics.median(t - m for t, m in seen))
        ctx.runs.add("first/client", statistics.median(t for t, _ in seen))
        ctx.runs.add("first/model", statistics.median(m for _, m in seen))
        ctx.runs.add("first/first_job", seen[0][0])
        log.info("first try %d done (%s)", rep + 1, ctx.elapsed())
    rows = [
        [
            label,
            ctx.runs.fig(f"first/{key}").show(1, MS),
        ]
        for label, key in (
            ("answer, as the client timed it (median of the run)", "client"),
            ("the record's `model_seconds` (median of the run)", "model"),
            ("answer beyond `model_seconds` (median of the run)", "beyond_model"),
            ("the very first job of a fresh stack", "first_job"),
        )
    ]
    ctx.sections.append(
        Section(
            "7. A new user's first try (`make run`, the built-in local model)",
            f"A stack as `make run` starts it: the built-in local model (apps/model) with "
            "config/models.yaml, the default components, no settings. Then, one at a time, "
            f"{jobs} `classify` jobs with `Prefer: wait=20`, the README's first command, each "
            "answered `200` with its result. A fresh stack per run.",
            ["figure", "ms"],
            rows,
        )
    )
