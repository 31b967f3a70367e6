"""`jobrelay batch`'s file handling: keys that survive a rerun, and a ledger a kill cannot
corrupt. The run against the stack is in tests/integration/test_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

from jobrelay.cli import batch
from jobrelay.client import ApiError, ConnectionFailed, WaitTimeout

LINE = '{"task": "embed", "input": {"text": "hello"}}'


def test_idempotency_key_depends_only_on_file_line_and_content(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    key = batch.idempotency_key(source, 3, LINE)
    assert key == batch.idempotency_key(source, 3, LINE)
    assert key != batch.idempotency_key(source, 4, LINE)
    assert key != batch.idempotency_key(source, 3, LINE.replace("hello", "hullo"))
    assert key != batch.idempotency_key(tmp_path / "other.jsonl", 3, LINE)
    assert len(key) <= 255


def test_lines_keep_their_numbers_and_custom_ids(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    custom = json.dumps({"custom_id": "a-1", **json.loads(LINE)})
    source.write_text(f"{LINE}\n\n{custom}\n[1, 2]\n{{broken\n")
    lines = batch.read_lines(source)
    assert [(line.number, line.custom_id) for line in lines] == [
        (1, "line-1"),
        (3, "a-1"),
        (4, "line-4"),
        (5, "line-5"),
    ]
    assert lines[1].submission is not None
    assert lines[1].submission.idempotency_key == batch.idempotency_key(source, 3, custom)
    assert lines[2].problem == "a line must be a JSON object"
    assert lines[3].problem is not None
    assert lines[3].problem.startswith("not valid JSON")


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    ledger = tmp_path / "out.jsonl"
    ledger.write_text('{"line": 1}\n{"line": 2}\n{"li')
    assert batch.done_lines(ledger, tmp_path / "missing.jsonl") == {1, 2}
    assert ledger.read_text() == '{"line": 1}\n{"line": 2}\n'


def test_only_transient_errors_are_left_for_a_rerun() -> None:
    assert batch.is_transient(ConnectionFailed("refused"))
    assert batch.is_transient(WaitTimeout("j", 1))
    assert batch.is_transient(ApiError(503, "broker_unavailable", "down"))
    assert not batch.is_transient(ApiError(422, "invalid_params", "bad"))
