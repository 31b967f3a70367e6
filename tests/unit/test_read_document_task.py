"""The read_document task: the text from the real readers, and the model parts (summary,
a vision model's description) from a scripted OpenAI-compatible server, a test double
(tests/doubles/scripted_model.py) that answers what it is told."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from apps.worker.gateway import Gateway
from apps.worker.models import ModelClient
from apps.worker.profiles import Catalog, ModelProfile
from apps.worker.tasks import read_document
from jobrelay.contract import FileRef, JobInput, JobRecord
from tests import documents
from tests.doubles.scripted_model import Reply, ScriptedModel, scripted_model

pytestmark = pytest.mark.anyio


@pytest.fixture
def double() -> Iterator[ScriptedModel]:
    with scripted_model() as server:
        yield server


def _gateway(url: str, *capabilities: str) -> Gateway:
    profile = ModelProfile.model_validate(
        {"name": "scripted", "base_url": url, "model": "m", "capabilities": list(capabilities)}
    )
    catalog = Catalog(profiles={"scripted": profile}, tasks={"read_document": ["scripted"]})
    return Gateway(catalog, limits=None, max_inflight=4)


@pytest.fixture
async def chat_only(double: ScriptedModel) -> AsyncIterator[Gateway]:
    gateway = _gateway(double.url, "chat")
    yield gateway
    await gateway.close()


@pytest.fixture
async def with_vision(double: ScriptedModel) -> AsyncIterator[Gateway]:
    gateway = _gateway(double.url, "chat", "vision")
    yield gateway
    await gateway.close()


def _job(content: bytes, content_type: str, **params: object) -> JobRecord:
    ref = FileRef(key="file:x", content_type=content_type, size=len(content), chunks=1, sha256="0")
    record = JobRecord.new("read_document", JobInput(file=ref), dict(params), {})
    loaded = record.input.model_copy(update={"content": content})
    return record.model_copy(update={"input": loaded})


async def test_the_text_is_read_without_any_model_call(
    double: ScriptedModel, chat_only: Gateway
) -> None:
    job = _job(documents.invoice(), "image/png")
    result = await read_document.run(job, ModelClient(chat_only, "read_document", None, 1))
    assert documents.INVOICE_NUMBER in result.output["markdown"]
    assert result.output["markdown"] == result.output["text"]
    assert result.model == read_document.READER
    assert double.calls() == []


async def test_a_summary_is_added_and_marked_as_the_models(
    double: ScriptedModel, chat_only: Gateway
) -> None:
    double.script("m", Reply(content="An invoice from ACME."))
    job = _job(documents.text_pdf(), "application/pdf", summary=True)
    result = await read_document.run(job, ModelClient(chat_only, "read_document", None, 1))
    markdown = result.output["markdown"]
    assert markdown.startswith("## Text\n\n")
    assert markdown.endswith(
        "## Summary\n\n*Written by a language model from the text above.*\n\nAn invoice from ACME."
    )
    assert documents.INVOICE_TOTAL in double.calls()[0].body["messages"][1]["content"]


async def test_with_a_vision_profile_an_image_gets_its_description_first(
    double: ScriptedModel, with_vision: Gateway
) -> None:
    double.script("m", Reply(content="A printed invoice on white paper."))
    job = _job(documents.invoice(), "image/png")
    result = await read_document.run(job, ModelClient(with_vision, "read_document", None, 1))
    assert result.output["description"] == "A printed invoice on white paper."
    assert result.output["markdown"].startswith(
        "## Description\n\nA printed invoice on white paper.\n\n## Text\n\n"
    )
    sent = double.calls()[0].body["messages"][0]["content"]
    assert sent[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_long_documents_summary_is_written_from_its_beginning_and_says_so(
    double: ScriptedModel, chat_only: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_document, "SUMMARY_INPUT_CHARS", 40)  # the invoice is longer
    double.script("m", Reply(content="An invoice."))
    job = _job(documents.text_pdf(), "application/pdf", summary=True)
    result = await read_document.run(job, ModelClient(chat_only, "read_document", None, 1))
    assert len(double.calls()[0].body["messages"][1]["content"]) == 40
    assert "from the beginning of the text above" in result.output["markdown"]
    assert result.output["summary_of_beginning"] is True
