"""Last-Event-ID on a job's event stream (jobrelay.event_ids): a malformed one restarts the
stream from the job as it is now, never crashes it (issue 17, Low); a status id (`seq`) and
a delta id (`seq.n`) resume exactly after what they name (issue 19)."""

from __future__ import annotations

import pytest

from jobrelay.event_ids import EventId


@pytest.mark.parametrize(
    "header",
    [None, "", "²", "٣", "1" * 4301, "-1", " 3", "0x10", "9" * 19, "1.", ".5", "1.2.3", "1.-2"],
)
def test_a_malformed_last_event_id_means_nothing_seen(header: str | None) -> None:
    assert EventId.parse(header) is None


@pytest.mark.parametrize(
    ("header", "seq"), [("0", 0), ("7", 7), ("123456789012345678", 123456789012345678)]
)
def test_a_seq_from_before_deltas_resumes_after_it(header: str, seq: int) -> None:
    seen = EventId.parse(header)
    assert seen == EventId(seq)
    assert str(seen) == header


def test_a_delta_id_round_trips() -> None:
    seen = EventId.parse("7.12")
    assert seen == EventId(7, 12)
    assert str(seen) == "7.12"


def test_ids_increase_along_a_stream_running_deltas_then_the_end() -> None:
    # queued 1, running 2 with three deltas, back to queued 3 (a retry), running 4 with
    # one delta, succeeded 5: the order a stream sends them in.
    sent = ["1", "2", "2.1", "2.2", "2.3", "3", "4", "4.1", "5"]
    ids = [EventId.parse(i) for i in sent]
    assert all(i is not None for i in ids)
    assert ids == sorted(ids)  # type: ignore[type-var]
    assert len(set(ids)) == len(ids)
    # Numbers, not text: the tenth delta comes after the ninth.
    assert EventId.parse("2.10") > EventId.parse("2.9")  # type: ignore[operator]
