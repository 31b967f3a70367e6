"""`make bench`: every scenario of issue 10 on jobrelay, FastAPI + Celery + Redis and the
synchronous design, side by side in one run, written to docs/benchmarks.md.

    python -m bench [--repeats 3] [--quick] [--out docs/benchmarks.md]

`--quick` shrinks every scenario (one run each, small counts) to check the harness in a
minute or two; its figures are not worth reporting.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import batch, listing, procs, report, scenarios, stacks
from bench.model import ModelDouble
from bench.targets import targets_section

log = logging.getLogger("bench")
INTRO = """# Benchmarks

Written by `make bench` (bench/); do not edit by hand. What jobrelay costs and how
far it scales on this machine, side by side in one run with the two designs users would pick
instead, doing the same job: (a) the **synchronous** design, the model called inside the HTTP
request; (b) **FastAPI + Celery + Redis** with the same submit-and-poll API
(bench/baselines/); (c) **jobrelay**, with real daprd sidecars launched by the Dapr CLI, the
project's components/redis and components/common, and a private Redis. Each design has a
Redis of its own (scripts/redis.sh) and runs the same job, an `embed` of a short text, on one
model double (bench/doubles/instant_model.py: a TEST DOUBLE, an OpenAI-compatible server that
answers at once, or after 200 ms behind a concurrency limit). Each design keeps
8 jobs in flight at the model (jobrelay's worker `JOBRELAY_WORKER_MAX_INFLIGHT`, Celery's
threads).
"""


def _redis_version() -> str:
    out = subprocess.run(
        ["redis-server", "--version"],  # noqa: S607 (Debian's redis-server)
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split(" v=")[-1].split()[0] if " v=" in out.stdout else "unknown"


def _reliability() -> tuple[int, int]:
    """(cases passed, cases) in the chaos suite's run as docs/reliability.md (written by
    `make chaos`) records it."""
    doc = stacks.ROOT / "docs" / "reliability.md"
    outcomes = [
        line.rsplit("|", 2)[1].strip()
        for line in doc.read_text().splitlines()
        if line.startswith("| (")
    ]
    return sum(o == "passed" for o in outcomes), len(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description="jobrelay's benchmarks (issue 10)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=stacks.ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    repeats = 1 if args.quick else args.repeats
    workdir = Path(tempfile.mkdtemp(prefix="jobrelay-bench-"))
    load_before, started = procs.load_average(), time.monotonic()
    double, url = stacks.start_model_double(workdir)
    model = ModelDouble(url)
    designs: dict[str, stacks.Design] = {}
    keep = args.keep
    try:
        for start in (stacks.start_sync, stacks.start_celery, stacks.start_jobrelay):
            design = start(workdir, url)
            designs[design.name] = design
        ctx = scenarios.Context(workdir, repeats, model, designs)
        run_all(ctx, args.quick, workdir, url)
        seconds = time.monotonic() - started
        facts = report.machine_facts(
            stacks.ROOT, load_before, procs.load_average(), seconds, repeats, _redis_version()
        )
        # Numbered as in the issue, whatever order they ran in (the backlog runs last, since
        # it leaves the stack loaded).
        ordered = sorted(ctx.sections, key=_number)
        sections = [facts, targets_section(ctx.runs, _reliability()), *ordered]
        report.write(args.out, INTRO, sections)
        log.info("wrote %s in %.1f min", args.out, seconds / 60)
    except BaseException:
        keep = True  # the apps' and sidecars' logs are what explains a failed run
        raise
    finally:
        for design in designs.values():
            design.stop()
        model.close()
        double.stop()
        if keep:
            log.info("logs kept in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_all(ctx: scenarios.Context, quick: bool, workdir: Path, url: str) -> None:
    scale = 0.2 if quick else 1.0
    scenarios.intake(ctx, duration=1.0 if quick else 3.0)
    scenarios.overhead(ctx, jobs=int(100 * scale))
    scenarios.sustained(ctx, jobs=int(1500 * scale))
    shared = {
        "jobrelay-shared-limit": lambda: stacks.start_jobrelay(
            workdir / "shared", url, shared_limit=scenarios.MODEL_LIMIT
        )
    }
    scenarios.model_bound(ctx, shared, jobs=int(400 * scale))
    variants = {
        "jobrelay-quotas-off": lambda: stacks.start_jobrelay(
            workdir / "quotas-off", url, extra_env=stacks.QUOTAS_OFF
        ),
        "jobrelay-plaintext": lambda: stacks.start_jobrelay(
            workdir / "plaintext", url, profile=stacks.plaintext_profile(workdir)
        ),
    }
    scenarios.security_cost(ctx, variants, seconds=1.0 if quick else 5.0)
    scenarios.first_try(
        ctx,
        lambda rep: stacks.start_jobrelay(workdir / f"first-try-{rep}", None),
        jobs=5 if quick else 20,
    )
    scenarios.overload(ctx, burst_seconds=0.5 if quick else 2.0, repeats=1 if quick else 2)
    scenarios.profile(ctx, seconds=3 if quick else 8)
    batch.batch(ctx, lines=1000 if quick else 10_000)
    scenarios.backlog(ctx, jobs=int(100_000 * (0.05 if quick else 1.0)))
    fill = 5_000 if quick else 100_000
    ctx.sections.append(listing.scenario(workdir, url, ctx.repeats, fill))


def _number(section: report.Section) -> tuple[int, str]:
    """The number of a section titled "3b. Where ...": (3, "b"), so 10 comes after 9."""
    number = section.title.split(" ", 1)[0].rstrip(".")
    digits = len(number) - len(number.lstrip("0123456789"))
    return int(number[:digits]), number[digits:]


if __name__ == "__main__":
    main()
