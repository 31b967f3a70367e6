"""The OpenAI batch scenario: 10,000 embeddings as one batch (`/v1/files` + `/v1/batches`,
through the official `openai` SDK) against the same 10,000 jobs submitted directly
(`POST /v1/jobs`, 32 clients), on the same jobrelay stack and the same instant model double,
with intake's memory (RSS, from /proc) sampled through both.

Part of `make bench`; on its own (starts only the model double and jobrelay, and replaces
only its own section of docs/benchmarks.md):

    .venv/bin/python -m bench.batch [--lines 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from openai import OpenAI

from bench import load, procs, report, stacks
from bench.model import ModelDouble
from bench.report import Section
from bench.scenarios import Context, _drain
from bench.stacks import Design
from bench.stats import Figure, ratio

log = logging.getLogger(__name__)
TITLE = "10. OpenAI batch vs the same jobs submitted directly"
_MIB = 1024 * 1024


class _Rss:
    """Samples a process's RSS every 50 ms in a thread; the peak and the first sample."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.first = procs.rss_bytes(pid)
        self.peak = self.first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, procs.rss_bytes(self._pid))

    def __enter__(self) -> _Rss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, procs.rss_bytes(self._pid))


def _direct(ctx: Context, design: Design, lines: int, first: int) -> tuple[float, int, _Rss]:
    """Seconds from the first submit to the last model call's end, and the submits not
    accepted (a 503 or a dropped connection under load: not retried, so the direct run
    carries fewer jobs than the batch, if anything)."""
    ctx.model.reset()
    with _Rss(design.pids["intake"]) as rss:
        start = time.monotonic()
        out = asyncio.run(load.closed_loop(design.submit_url, 32, 3600, lines, first=first))
        _drain(ctx, len(out.ids), timeout=600)
    spans = ctx.model.spans()
    if spans.calls < len(out.ids):
        raise RuntimeError(f"direct: the model saw {spans.calls} of {len(out.ids)} jobs")
    return max(spans.ends) - start, lines - len(out.ids), rss


def _jsonl(lines: int, first: int) -> bytes:
    rows = (
        {
            "custom_id": f"b-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "any", "input": f"benchmark job {i}: the quick brown fox"},
        }
        for i in range(first, first + lines)
    )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def _batch(ctx: Context, design: Design, lines: int, first: int) -> tuple[float, float, _Rss]:
    """Seconds from the upload's start to the last model call's end, and to `completed`
    (the output file written)."""
    base = design.submit_url.removesuffix("/jobs")
    data = _jsonl(lines, first)
    ctx.model.reset()
    with OpenAI(base_url=base, api_key="bench") as client, _Rss(design.pids["intake"]) as rss:
        start = time.monotonic()
        uploaded = client.files.create(file=("bench.jsonl", io.BytesIO(data)), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            if time.monotonic() - start > 600:
                raise RuntimeError(f"batch {batch.id} not done in 600 s: {batch.status}")
            time.sleep(0.1)
            batch = client.batches.retrieve(batch.id)
        done = time.monotonic() - start
    counts = batch.request_counts
    if batch.status != "completed" or counts is None or counts.completed != lines:
        raise RuntimeError(f"batch {batch.id} ended {batch.status} with {counts}")
    spans = ctx.model.spans()
    return max(spans.ends) - start, done, rss


def batch(ctx: Context, lines: int = 10_000) -> None:
    design = ctx.designs["jobrelay"]
    ctx.model.instant()
    # Flat memory means a batch's file is never held: a batch four times the size must not
    # grow intake more than a quarter-size one does. Both run in every repeat.
    quarter = max(lines // 4, 1)
    for rep in range(ctx.repeats):
        first = 50_000_000 + rep * 3 * lines
        direct, refused, rss_direct = _direct(ctx, design, lines, first)
        ctx.runs.add("batch/direct/refused", refused)
        _, small_done, rss_small = _batch(ctx, design, quarter, first + lines)
        ctx.runs.add("batch/quarter/seconds", small_done)
        ran, done, rss_batch = _batch(ctx, design, lines, first + 2 * lines)
        ctx.runs.add("batch/direct/seconds", direct)
        ctx.runs.add("batch/batch/run", ran)
        ctx.runs.add("batch/batch/seconds", done)
        for name, rss in (("direct", rss_direct), ("quarter", rss_small), ("batch", rss_batch)):
            ctx.runs.add(f"batch/{name}/rss_first", rss.first / _MIB)
            ctx.runs.add(f"batch/{name}/rss_growth", (rss.peak - rss.first) / _MIB)
        log.info(
            "batch rep %d: direct %.1f s, batch %.1f s (%.1f s to run)", rep, direct, done, ran
        )
    fig = ctx.runs.fig
    direct_fig = fig("batch/direct/seconds")

    def rate(key: str, jobs: int = lines) -> str:
        seconds = fig(key)
        return Figure(
            jobs / seconds.median, jobs / seconds.high, jobs / seconds.low, seconds.runs
        ).show(0)

    rows = [
        [
            "directly (`POST /v1/jobs`, 32 clients)",
            "first submit → last job run",
            direct_fig.show(1),
            rate("batch/direct/seconds"),
            "1.00x",
            fig("batch/direct/rss_first").show(0),
            fig("batch/direct/rss_growth").show(1),
        ],
        [
            "one batch (`openai` SDK)",
            "upload starts → last job run",
            fig("batch/batch/run").show(1),
            rate("batch/batch/run"),
            ratio(fig("batch/batch/run"), direct_fig),
            fig("batch/batch/rss_first").show(0),
            fig("batch/batch/rss_growth").show(1),
        ],
        [
            "one batch (`openai` SDK)",
            "upload starts → `completed` (output file written)",
            fig("batch/batch/seconds").show(1),
            rate("batch/batch/seconds"),
            ratio(fig("batch/batch/seconds"), direct_fig),
            "",
            "",
        ],
        [
            f"one batch of {quarter:,} lines (a quarter)",
            "upload starts → `completed` (output file written)",
            fig("batch/quarter/seconds").show(1),
            rate("batch/quarter/seconds", quarter),
            "",
            fig("batch/quarter/rss_first").show(0),
            fig("batch/quarter/rss_growth").show(1),
        ],
    ]
    ctx.sections.append(
        Section(
            TITLE,
            f"{lines:,} `embed` jobs on the instant model double, first submitted directly, "
            "then as one OpenAI batch of the same lines (`/v1/embeddings`) on the same stack: "
            "files.create, batches.create, batches.retrieve every 100 ms until `completed`. "
            "The target: the batch within 1.2x the direct time, intake's memory flat. "
            "Intake's RSS is sampled every 50 ms through each run; flat means it does not "
            f"follow the file: each repeat also runs a batch of {quarter:,} lines (before the "
            f"{lines:,}), and the {lines:,}-line batch should grow intake no more than it. "
            "Direct submits not "
            f"accepted (not retried): {fig('batch/direct/refused').show(0)}.",
            [
                "how",
                "measured",
                "seconds",
                "jobs/s",
                "÷ direct",
                "intake RSS at start, MiB",
                "intake RSS growth, MiB",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="the OpenAI batch scenario alone")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=stacks.ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="jobrelay-bench-batch-"))
    double, url = stacks.start_model_double(workdir)
    model = ModelDouble(url)
    design = None
    try:
        design = stacks.start_jobrelay(workdir, url)
        ctx = Context(workdir, args.repeats, model, {"jobrelay": design})
        batch(ctx, args.lines)
        report.replace_section(args.out, ctx.sections[0])
        log.info("wrote the section %r of %s", TITLE, args.out)
    finally:
        if design is not None:
            design.stop()
        model.close()
        double.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
