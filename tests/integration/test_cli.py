"""The `jobrelay` CLI as a user runs it (a subprocess) against the running stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.helpers import SENTIMENT, webhook_receiver
from tests.integration.stack import API_KEYS, Stack

# The obvious sentiments of test_jobs_end_to_end.py: each line's label is certain.
TEXTS = [
    "I love this product, it works perfectly!",
    "This is the worst purchase I have ever made.",
    "The package arrived on Tuesday.",
    "Absolutely fantastic service, thank you so much!",
    "I hate it. Awful.",
]


def cli(stack: Stack, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jobrelay.cli",
        "--intake-url",
        stack.url("intake"),
        "--status-url",
        stack.url("status"),
        "--api-key",
        API_KEYS["default"],
        *args,
    ]


def run_cli(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        cli(stack, *args), capture_output=True, text=True, timeout=timeout, env=env
    )


def write_batch(path: Path, lines: int, **extra: Any) -> None:
    with path.open("w") as out:
        for n in range(lines):
            line = {
                "custom_id": f"review-{n}",
                "task": "classify",
                # Distinct texts, so that no two lines are the same request.
                "input": {"text": f"{TEXTS[n % len(TEXTS)]} #{n}"},
                "params": {"labels": SENTIMENT},
                **extra,
            }
            out.write(json.dumps(line) + "\n")


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_submit_wait_shows_the_result(stack: Stack) -> None:
    done = run_cli(stack, "submit", "classify", "I love this!", *_labels(), "--wait")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout
    assert "positive" in done.stdout
    as_json = run_cli(stack, "submit", "embed", "hello", "--wait", "--json")
    job = json.loads(as_json.stdout)
    assert (job["status"], job["result"]["output"]["dimensions"]) == ("succeeded", 384)


def test_status_watch_and_cancel(stack: Stack) -> None:
    job = json.loads(run_cli(stack, "submit", "embed", "hi", "--json").stdout)
    watched = run_cli(stack, "watch", job["id"], "--json")
    assert json.loads(watched.stdout.splitlines()[-1])["status"] == "succeeded"
    status = run_cli(stack, "status", job["id"])
    assert status.returncode == 0
    assert "384 dimensions" in status.stdout
    cancel = run_cli(stack, "cancel", job["id"], "--json")
    assert cancel.returncode == 3
    assert json.loads(cancel.stdout)["error"]["code"] == "job_finished"


def test_unknown_job_is_an_error_with_its_code(stack: Stack) -> None:
    missing = run_cli(stack, "status", "0" * 32)
    assert missing.returncode == 3
    assert "job_not_found" in missing.stderr


def test_batch_of_200_lines_completes(stack: Stack, tmp_path: Path) -> None:
    source, output = tmp_path / "reviews.jsonl", tmp_path / "results.jsonl"
    write_batch(source, 200)
    with source.open("a") as out:  # two lines that cannot become jobs
        out.write('{"task": "classify", "input": {"text": "x"}, "params": {"labels": ["one"]}}\n')
        out.write("not json\n")
    done = run_cli(stack, "batch", str(source), "-o", str(output), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["lines"], summary["succeeded"], summary["failed"]) == (202, 200, 2)
    results = records(output)
    assert sorted(r["line"] for r in results) == list(range(1, 201))
    assert all(r["response"]["body"]["status"] == "succeeded" for r in results)
    by_id = {r["custom_id"]: r["response"]["body"]["result"]["output"]["label"] for r in results}
    assert (by_id["review-0"], by_id["review-1"]) == ("positive", "negative")
    errors = {r["line"]: r["error"]["code"] for r in records(tmp_path / "results.errors.jsonl")}
    assert errors == {201: "invalid_params", 202: "invalid_line"}


def test_batch_resumes_after_a_kill_without_duplicate_jobs(stack: Stack, tmp_path: Path) -> None:
    source, output = tmp_path / "reviews.jsonl", tmp_path / "results.jsonl"
    state = tmp_path / "results.batch.json"
    with webhook_receiver() as server:
        # Every job the server creates for this file reports to `server` once it ends: the
        # server's own count of jobs, whatever the CLI did or did not write down.
        write_batch(source, 200, webhook={"url": server.url})
        first = subprocess.Popen(
            cli(stack, "batch", str(source), "-o", str(output)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(state, 60)  # the batch was created: kill the CLI while it runs
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        batch_id = json.loads(state.read_text())["batch_id"]
        assert not output.exists(), "the first run finished before it could be killed"

        rerun = run_cli(stack, "batch", str(source), "-o", str(output), "--json")
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)
        assert (summary["batch"], summary["resumed"]) == (batch_id, True)
        assert (summary["succeeded"], summary["failed"]) == (200, 0)

        results = records(output)
        assert sorted(r["line"] for r in results) == list(range(1, 201))
        job_ids = {r["id"] for r in results}
        assert len(job_ids) == 200
        delivered = _job_ids_delivered(server, expected=200)
    assert delivered == job_ids, f"{len(delivered - job_ids)} jobs the output does not know"


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path.name} in {timeout:.0f}s"
        time.sleep(0.01)


def _job_ids_delivered(server: Any, expected: int) -> set[str]:
    server.wait_for(expected)
    time.sleep(1.0)  # a duplicate job would report a moment after the others
    return {json.loads(received.body)["id"] for received in server.received}


def _labels() -> list[str]:
    return [arg for label in SENTIMENT for arg in ("--label", label)]
