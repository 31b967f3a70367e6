"""`jobrelay batch`'s file handling: input lines become OpenAI batch lines for `/v1/jobs`
with their numbers kept, and the server's output and error lines become the CLI's records.
The run against the stack is in tests/integration/test_cli.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

from jobrelay.cli import batch

LINE = '{"task": "embed", "input": {"text": "hello"}}'


def test_lines_become_jobs_batch_lines_and_keep_their_numbers(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    custom = json.dumps({"custom_id": "a-1", **json.loads(LINE)})
    source.write_text(f"{LINE}\n\n{custom}\n[1, 2]\n{{broken\n")
    out = io.StringIO()
    numbers = batch.write_requests(source, out)
    written = out.getvalue().split("\n")
    assert len(written) == 6  # five lines, the blank one kept, and the final newline
    first = json.loads(written[0])
    assert first == {
        "custom_id": "line-1",
        "method": "POST",
        "url": "/v1/jobs",
        "body": json.loads(LINE),
    }
    assert written[1] == ""
    assert json.loads(written[2])["custom_id"] == "a-1"
    assert "custom_id" not in json.loads(written[2])["body"]
    # Not objects: sent as they are, for the server to refuse with its reason.
    assert written[3:5] == ["[1, 2]", "{broken"]
    assert numbers == {"line-1": [1], "a-1": [3]}


def test_server_lines_become_records_with_their_line_numbers() -> None:
    numbers = {"same": [2, 5], "line-7": [7]}
    job = {"id": "j1", "status": "succeeded"}
    ok = {
        "custom_id": "same",
        "response": {"status_code": 200, "request_id": "j1", "body": job},
        "error": None,
    }
    assert batch.record_of(ok, numbers) == {
        "id": "j1",
        "custom_id": "same",
        "line": 2,
        "response": {"status_code": 200, "body": job},
        "error": None,
    }
    assert batch.record_of(ok, numbers)["line"] == 5  # the next line with that custom_id
    refused = {
        "custom_id": None,
        "response": None,
        "error": {"code": "invalid_line", "message": "not JSON", "line": 9},
    }
    record = batch.record_of(refused, numbers)
    assert (record["line"], record["custom_id"], record["id"]) == (9, "line-9", None)
    assert record["error"] == {"code": "invalid_line", "message": "not JSON"}
    error = {"code": "job_failed", "message": "the job was failed", "line": 7}
    failed = {"custom_id": "line-7", "response": None, "error": error}
    assert batch.record_of(failed, numbers)["line"] == 7
    assert numbers["line-7"] == []
