"""The listing scenario: how long GET /v1/jobs takes for a tenant with 500 jobs when the
store holds about a thousand jobs and when it holds about a hundred thousand (other
tenants'), on two jobrelay stacks of its own (the fill would skew every other scenario).

    python -m bench.listing [--repeats 3] [--jobs 100000] [--out docs/benchmarks.md]

Run alone, it replaces its own section of docs/benchmarks.md and leaves the rest as it is;
`make bench` runs it too. The tenant's 500 jobs go through intake, so their index is the one
intake writes; the other tenants' jobs are written straight through intake's sidecar with
Dapr's bulk state API (records, and an index head per tenant, as intake would write them),
since submitting 100,000 jobs one by one would take most of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import load, procs, stacks
from bench.report import Runs, Section, replace_section
from bench.stats import percentile
from jobrelay import keys
from jobrelay.contract import JobInput, JobRecord, JobStatus
from jobrelay.job_index import PAGE_SIZE, Entry, Head

log = logging.getLogger("bench.listing")
MS = 1000.0
MINE = 500
OTHERS_PER_TENANT = 100
TITLE = "9. Listing a tenant's jobs (jobrelay)"
# What one measurement asks for, and how many times per run.
_QUERIES = {
    "first page": "limit=50",
    "succeeded, a page at a random cursor": "status=succeeded&limit=50",
    "sparse filter (1 job in 500)": "metadata=n=7&limit=50",
}
_REQUESTS = 100


async def _submit_mine(design: stacks.Design) -> list[str]:
    bodies = [
        {"task": "embed", "input": {"text": f"listed {n}"}, "metadata": {"n": str(n)}}
        for n in range(MINE)
    ]
    gate = asyncio.Semaphore(16)
    async with load.client(16) as http:

        async def one(body: dict[str, Any]) -> str:
            async with gate:
                answer = await http.post(design.submit_url, json=body)
                answer.raise_for_status()
                job_id: str = answer.json()["id"]
                return job_id

        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def _wait_done(design: stacks.Design, ids: list[str], seconds: float = 120) -> None:
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as http:
        for job_id in ids:
            while (await http.get(design.status_url(job_id))).status_code != 200:
                if time.monotonic() > stop:
                    raise TimeoutError(f"job {job_id} not done in {seconds}s")
                await asyncio.sleep(0.2)


async def _fill(design: stacks.Design, jobs: int, first_tenant: int) -> int:
    """`jobs` finished jobs of other tenants (OTHERS_PER_TENANT each), records and index
    heads, a thousand values per bulk call. Returns the tenants made."""
    sidecar = design.sidecar_http["intake"]
    tenants = jobs // OTHERS_PER_TENANT
    async with httpx.AsyncClient(timeout=120) as http:
        batch: list[dict[str, str]] = []
        for t in range(first_tenant, first_tenant + tenants):
            tenant = f"other-{t}"
            records = [
                JobRecord.new("embed", JobInput(text=f"other {t}/{n}"), {}, {}, tenant=tenant)
                for n in range(OTHERS_PER_TENANT)
            ]
            records = [r.model_copy(update={"status": JobStatus.SUCCEEDED}) for r in records]
            # As JSON text: daprd 1.18's HTTP API formats any other value with Go's %v
            # before it encrypts it.
            batch += [{"key": keys.job(r.id), "value": r.model_dump_json()} for r in records]
            head = Head(tail=[Entry.of(r) for r in records[:PAGE_SIZE]])
            batch.append({"key": keys.index_head(tenant), "value": head.model_dump_json()})
            if len(batch) >= 1000:
                (await http.post(f"{sidecar}/v1.0/state/statestore", json=batch)).raise_for_status()
                batch = []
        if batch:
            (await http.post(f"{sidecar}/v1.0/state/statestore", json=batch)).raise_for_status()
    return tenants


async def _cursors(design: stacks.Design, query: str) -> list[str]:
    """Every page URL of a listing: the first, then each `next`."""
    urls = [f"{design.status_base}/v1/jobs?{query}"]
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            page = (await http.get(urls[-1])).raise_for_status().json()
            if page["next"] is None:
                return urls
            urls.append(page["next"])


async def _latencies(design: stacks.Design, query: str) -> tuple[list[float], int]:
    """Seconds per page over _REQUESTS requests, one at a time, of random pages of `query`,
    and how many pages it has."""
    urls = await _cursors(design, query)
    seen: list[float] = []
    async with load.client(1) as http:
        for _ in range(_REQUESTS):
            start = time.perf_counter()
            answer = await http.get(random.choice(urls))  # noqa: S311
            answer.raise_for_status()
            seen.append(time.perf_counter() - start)
    return seen, len(urls)


def _measure(runs: Runs, design: stacks.Design, state: str) -> dict[str, int]:
    pages: dict[str, int] = {}
    for name, query in _QUERIES.items():
        seen, pages[name] = asyncio.run(_latencies(design, query))
        runs.add(f"{state}/{name}/p50", percentile(seen, 50))
        runs.add(f"{state}/{name}/p99", percentile(seen, 99))
    return pages


def _stack(workdir: Path, model_url: str, state: str, jobs: int) -> stacks.Design:
    """A stack whose store holds the tenant's MINE jobs and other tenants' up to `jobs`."""
    design = stacks.start_jobrelay(workdir / state, model_url, name=f"jobrelay-{state}")
    try:
        ids = asyncio.run(_submit_mine(design))
        asyncio.run(_wait_done(design, ids))
        started = time.monotonic()
        asyncio.run(_fill(design, jobs - MINE, 0))
        log.info(
            "listing: %s store filled to ~%d jobs in %.0fs", state, jobs, time.monotonic() - started
        )
    except BaseException:
        design.stop()
        raise
    return design


def scenario(workdir: Path, model_url: str, repeats: int, fill: int) -> Section:
    """The section: the same tenant's listing at ~1,000 and at ~`fill` jobs in the store,
    on two stacks side by side, measured in turns so the machine's load falls on both."""
    sizes = {"small": 1000, "large": fill}
    designs: dict[str, stacks.Design] = {}
    runs = Runs()
    load_before = procs.load_average()
    try:
        for state, jobs in sizes.items():
            designs[state] = _stack(workdir, model_url, state, jobs)
        for _ in range(repeats):
            for state, design in designs.items():
                pages = _measure(runs, design, state)
    finally:
        for design in designs.values():
            design.stop()
    load_after = procs.load_average()
    rows = [
        [
            name,
            str(pages[name]),
            *(
                runs.fig(f"{state}/{name}/{q}").show(1, MS)
                for state in sizes
                for q in ("p50", "p99")
            ),
        ]
        for name in _QUERIES
    ]
    loads = " and ".join(" / ".join(f"{v:.1f}" for v in avg) for avg in (load_before, load_after))
    text = (
        f"One tenant's {MINE} jobs (submitted through intake, so indexed by it, then run) "
        f"listed with GET /v1/jobs on two jobrelay stacks side by side: one whose store holds "
        f"about 1,000 jobs, one with about {fill:,} (other tenants' finished jobs and their "
        "index heads, written through intake's sidecar with the bulk state API). Per run and "
        f"stack, {_REQUESTS} requests per query, one at a time, each for a page chosen at "
        "random among the listing's pages (its cursors, walked first); the stacks take turns "
        "run by run. A listing reads the tenant's index and the records of the entries it "
        "shows, never a scan of the store, so the two stores should answer alike; the sparse "
        "filter shows the bound on entries one request examines (500 index entries read, one "
        f"record). Load average (1/5/15 min) before and after: {loads}."
    )
    header = ["query", "pages", "p50 ms ~1k", "p99 ms ~1k", f"p50 ms ~{fill // 1000}k"]
    header.append(f"p99 ms ~{fill // 1000}k")
    return Section(TITLE, text, header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="jobrelay's listing benchmark")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the store, at most")
    parser.add_argument("--out", type=Path, default=stacks.ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="jobrelay-bench-listing-"))
    double, url = stacks.start_model_double(workdir)
    try:
        section = scenario(workdir, url, args.repeats, args.jobs)
        replace_section(args.out, section)
        log.info("wrote %s to %s", TITLE, args.out)
    finally:
        double.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
