"""Last-Event-ID on a job's event stream (apps/status/stream.py): a malformed one restarts
the stream from the job as it is now, never crashes it (issue 17, Low)."""

from __future__ import annotations

import pytest

from apps.status.stream import last_seen


@pytest.mark.parametrize(
    "header", [None, "", "²", "٣", "1" * 4301, "-1", "1.5", " 3", "0x10", "9" * 19]
)
def test_a_malformed_last_event_id_means_nothing_seen(header: str | None) -> None:
    assert last_seen(header) == -1


@pytest.mark.parametrize(
    ("header", "seq"), [("0", 0), ("7", 7), ("123456789012345678", 123456789012345678)]
)
def test_a_seq_resumes_after_it(header: str, seq: int) -> None:
    assert last_seen(header) == seq
