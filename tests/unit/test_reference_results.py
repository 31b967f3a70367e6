"""apps.status.reference: jobs in the reference sample's result contract."""

from __future__ import annotations

from apps.status.reference import as_markdown, finished, pending
from jobrelay.contract import JobError, JobInput, JobRecord, JobResult, JobStatus, Usage


def _job(task: str = "read_document") -> JobRecord:
    return JobRecord.new(task, JobInput(text="x"), {}, {})


def test_a_pending_job_is_only_a_message() -> None:
    assert pending(_job()).model_dump() == {"message": "The job is queued and will start shortly."}


def test_a_succeeded_job_is_completed_with_its_markdown() -> None:
    done = (
        _job()
        .moved_to(JobStatus.RUNNING)
        .moved_to(
            JobStatus.SUCCEEDED,
            result=JobResult(
                output={"markdown": "Invoice INV-1\n\nTotal 12.00", "text": "..."},
                model="tesseract+poppler",
                usage=Usage(prompt_tokens=0, total_tokens=0),
            ),
        )
    )
    answer = finished(done).model_dump(exclude_none=True)
    assert answer == {
        "id": done.id,
        "status": "completed",
        "data": {"result": "Invoice INV-1\n\nTotal 12.00"},
    }


def test_a_failed_job_carries_its_reason_where_the_page_shows_results() -> None:
    error = JobError(code="document_encrypted", message="the PDF is encrypted", retryable=False)
    failed = _job().moved_to(JobStatus.RUNNING).moved_to(JobStatus.FAILED, error=error)
    answer = finished(failed)
    assert answer.status == "failed"
    assert "document_encrypted" in answer.data.result
    assert answer.message == "the PDF is encrypted"
    assert answer.error is not None
    assert answer.error.code == "document_encrypted"


def test_other_tasks_outputs_read_as_markdown() -> None:
    assert as_markdown("summarize", {"summary": "Short."}) == "Short."
    classified = as_markdown("classify", {"label": "negative", "scores": {"negative": 0.9}})
    assert classified.startswith("**negative**")
    assert as_markdown("embed", {"dimensions": 2, "embedding": [0.1, 0.2]}).startswith("```json")
