"""Documents on the real stack: the reference sample's protocol end to end, documents as the
input of the text tasks, and hostile documents ending cleanly while the worker keeps serving.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests import documents
from tests.integration.helpers import classify, submit, wait_done
from tests.integration.stack import REFERENCE_PAGE_ORIGIN, Stack

INVOICE_SCHEMA = {
    "type": "object",
    "required": ["invoice_number", "total"],
    "additionalProperties": False,
    "properties": {"invoice_number": {"type": "string"}, "total": {"type": "string"}},
}


def _upload(
    client: httpx.Client, stack: Stack, task: str, file: tuple[str, bytes, str], **params: Any
) -> httpx.Response:
    return client.post(
        f"{stack.url('intake')}/v1/jobs",
        files={"file": file},
        data={"task": task, "params": json.dumps(params)},
    )


def _poll_like_the_reference_page(client: httpx.Client, url: str) -> httpx.Response:
    """What the sample's page does with results_url: GET; on 202 wait Retry-After (whole
    seconds, read from the exposed header) and GET again; stop at the first 200."""
    deadline = time.monotonic() + 120
    while True:
        resp = client.get(url, headers={"Origin": REFERENCE_PAGE_ORIGIN})
        assert "retry-after" in resp.headers.get("access-control-expose-headers", "").lower()
        if resp.status_code != 202:
            return resp
        assert set(resp.json()) == {"message"}
        retry_after = resp.headers["Retry-After"]
        assert retry_after.isdigit(), retry_after  # seconds, never an HTTP date
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(int(retry_after))


def test_the_reference_protocol_reads_an_invoice_image(client: httpx.Client, stack: Stack) -> None:
    resp = client.post(
        f"{stack.url('intake')}/api/process",
        files={"file": ("invoice.png", documents.invoice(), "image/png")},
        headers={"Origin": REFERENCE_PAGE_ORIGIN},
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["access-control-allow-origin"] == REFERENCE_PAGE_ORIGIN
    results_url = resp.json()["results_url"]
    assert results_url.startswith("http://")  # absolute: the page is on another origin

    done = _poll_like_the_reference_page(client, results_url)
    assert done.status_code == 200, done.text
    body = done.json()
    assert set(body) == {"id", "status", "data"}
    assert body["status"] == "completed"
    markdown = body["data"]["result"]
    assert documents.INVOICE_NUMBER in markdown
    assert documents.INVOICE_TOTAL in markdown
    assert "## Summary" in markdown  # the chat model's short summary of the text read


@pytest.mark.parametrize(
    ("route", "method"), [("intake:/api/process", "POST"), ("status:/api/results/x", "GET")]
)
def test_both_reference_routes_answer_the_pages_preflight(
    client: httpx.Client, stack: Stack, route: str, method: str
) -> None:
    app, path = route.split(":")
    resp = client.options(
        f"{stack.url(app)}{path}",
        headers={
            "Origin": REFERENCE_PAGE_ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == REFERENCE_PAGE_ORIGIN
    assert method in resp.headers["access-control-allow-methods"]


def test_a_failed_reference_job_is_an_answer_the_page_can_show(
    client: httpx.Client, stack: Stack
) -> None:
    resp = client.post(
        f"{stack.url('intake')}/api/process",
        files={"file": ("locked.pdf", documents.encrypted_pdf(), "application/pdf")},
    )
    assert resp.status_code == 202, resp.text
    done = _poll_like_the_reference_page(client, resp.json()["results_url"])
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "failed"
    assert "document_encrypted" in body["data"]["result"]
    assert body["error"]["code"] == "document_encrypted"


@pytest.mark.parametrize(
    "file",
    [
        ("invoice.png", documents.invoice(), "image/png"),
        ("invoice.pdf", documents.scanned_invoice_pdf(), "application/pdf"),
    ],
    ids=["image", "scanned-pdf"],
)
def test_extract_reads_the_invoice_number_and_total_from_a_document(
    client: httpx.Client, stack: Stack, file: tuple[str, bytes, str]
) -> None:
    resp = _upload(client, stack, "extract", file, schema=INVOICE_SCHEMA)
    assert resp.status_code == 202, resp.text
    job = wait_done(client, resp.json()["status_url"], timeout=180)
    assert job["status"] == "succeeded", job["error"]
    data = job["result"]["output"]["data"]
    assert data["invoice_number"] == documents.INVOICE_NUMBER
    assert documents.INVOICE_TOTAL in data["total"]


def test_read_document_turns_a_scanned_pdf_into_text(client: httpx.Client, stack: Stack) -> None:
    file = ("scan.pdf", documents.scanned_invoice_pdf(), "application/pdf")
    resp = _upload(client, stack, "read_document", file)
    assert resp.status_code == 202, resp.text
    job = wait_done(client, resp.json()["status_url"], timeout=120)
    output = job["result"]["output"]
    assert (output["pages"], output["ocr_pages"]) == (1, 1)
    assert documents.INVOICE_NUMBER in output["text"]


def test_classify_reads_an_uploaded_document_first(client: httpx.Client, stack: Stack) -> None:
    file = ("invoice.pdf", documents.text_pdf(), "application/pdf")
    labels = ["invoice", "love letter", "weather report"]
    resp = _upload(client, stack, "classify", file, labels=labels)
    assert resp.status_code == 202, resp.text
    job = wait_done(client, resp.json()["status_url"], timeout=60)
    assert job["result"]["output"]["label"] == "invoice"


_HOSTILE: list[tuple[str, Callable[[], bytes], str, str]] = [
    ("broken.png", documents.undecodable_png, "image/png", "document_unreadable"),
    ("bomb.png", documents.huge_png, "image/png", "document_too_large"),
    ("long.pdf", documents.many_pages_pdf, "application/pdf", "document_too_large"),
    ("locked.pdf", documents.encrypted_pdf, "application/pdf", "document_encrypted"),
    ("archive.pdf", documents.zip_named_pdf, "application/pdf", "content_type_mismatch"),
]


@pytest.mark.parametrize(
    ("name", "make", "content_type", "code"),
    _HOSTILE,
    ids=["undecodable", "100000x100000", "2000-pages", "encrypted", "zip-as-pdf"],
)
def test_a_hostile_document_ends_with_a_stable_code_and_the_worker_keeps_serving(
    client: httpx.Client,
    stack: Stack,
    name: str,
    make: Callable[[], bytes],
    content_type: str,
    code: str,
) -> None:
    started = time.monotonic()
    resp = _upload(client, stack, "read_document", (name, make(), content_type))
    if resp.status_code == 202:
        job = wait_done(client, resp.json()["status_url"], timeout=60)
        assert job["status"] == "failed"
        assert (job["error"]["code"], job["error"]["retryable"]) == (code, False)
        assert job["attempts"] == 1
    else:
        assert 400 <= resp.status_code < 500
        assert resp.json()["error"]["code"] == code
    assert time.monotonic() - started < 60  # refused or failed, never left running
    # The next job runs as usual on the same worker.
    after = submit(client, stack, classify("Great value, I love it."))
    job = wait_done(client, after.json()["status_url"])
    assert job["result"]["output"]["label"] == "positive"
