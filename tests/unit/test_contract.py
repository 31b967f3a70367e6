from datetime import timedelta

import pytest

from jobrelay.contract import IllegalTransition, JobInput, JobRecord, JobStatus, JobView


def _record(**changes: object) -> JobRecord:
    record = JobRecord.new("classify", JobInput(text="hi"), {"labels": ["a", "b"]}, {"k": "v"})
    return record.model_copy(update=changes)


def test_new_record_is_queued_with_a_hex_id_and_no_deadline_by_default() -> None:
    record = _record()
    assert record.status is JobStatus.QUEUED
    assert len(record.id) == 32
    int(record.id, 16)
    assert record.deadline is None
    assert record.attempts == 0


def test_deadline_seconds_sets_an_absolute_deadline() -> None:
    record = JobRecord.new("embed", JobInput(text="x"), {}, {}, deadline_seconds=30)
    assert record.deadline is not None
    assert record.deadline - record.created_at == timedelta(seconds=30)


@pytest.mark.parametrize("status", [s for s in JobStatus if s.terminal])
def test_terminal_jobs_never_move_again(status: JobStatus) -> None:
    record = _record(status=status)
    for target in JobStatus:
        with pytest.raises(IllegalTransition):
            record.moved_to(target)


def test_a_job_cannot_skip_from_queued_to_succeeded() -> None:
    with pytest.raises(IllegalTransition):
        _record().moved_to(JobStatus.SUCCEEDED)


def test_becoming_terminal_stamps_finished_at_and_drops_the_lease() -> None:
    running = _record().moved_to(JobStatus.RUNNING, lease_expires_at=_record().created_at)
    done = running.moved_to(JobStatus.FAILED)
    assert done.finished_at is not None
    assert done.lease_expires_at is None
    assert running.finished_at is None


def test_only_queued_and_running_are_pending() -> None:
    pending = {s for s in JobStatus if not s.terminal}
    assert pending == {JobStatus.QUEUED, JobStatus.RUNNING}


def test_view_hides_internal_fields_and_builds_an_absolute_status_url() -> None:
    record = _record()
    view = JobView.of(record, "http://example.test:8001/")
    assert view.status_url == f"http://example.test:8001/v1/jobs/{record.id}"
    dumped = view.model_dump()
    assert "lease_expires_at" not in dumped
    assert "tenant" not in dumped
    assert dumped["metadata"] == {"k": "v"}
