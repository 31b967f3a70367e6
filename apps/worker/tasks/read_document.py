"""read_document: an uploaded image or PDF as markdown, read offline, plus (if asked) a short
summary from the chat model and, for an image, a vision model's description where the task's
profiles have one.

The text comes from OCR and PDF engines, never from a language model, so what the result
quotes is what the document says; the summary is the chat model's and marked as such.
"""

from __future__ import annotations

import base64
from typing import Any

from apps.worker.models import ModelClient, chat_usage
from apps.worker.profiles import Capability
from apps.worker.reading import Document, read_document
from apps.worker.tasks.summarize import summary_of
from jobrelay.contract import JobRecord, JobResult, Usage
from jobrelay.inputs import IMAGE_FILE_TYPES
from jobrelay.tasks import ReadDocumentParams

# The engines, named as a job's `result.model` when no model was called.
READER = "tesseract+poppler"
# Characters of the text the summary is written from. The local chat model's context holds a
# few thousand tokens; a long document's summary covers its beginning (and says so) rather
# than failing the whole job on a too-long input.
SUMMARY_INPUT_CHARS = 6000


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = ReadDocumentParams.model_validate(record.params)
    file, content = record.input.file, record.input.content
    if file is None or content is None:
        raise ValueError("read_document runs on an uploaded document, and none was loaded")
    document = await read_document(content)
    output: dict[str, Any] = {
        "text": document.markdown,
        "pages": document.pages,
        "ocr_pages": document.ocr_pages,
    }
    usage, model = Usage(prompt_tokens=0, total_tokens=0), READER
    if params.describe and file.content_type in IMAGE_FILE_TYPES and models.can(Capability.VISION):
        data_url = f"data:{file.content_type};base64,{base64.b64encode(content).decode('ascii')}"
        prompt = "Describe this image in two or three sentences."
        output["description"], usage, model = await models.describe_image(prompt, data_url)
    if params.summary and not document.empty:
        excerpt = document.markdown[:SUMMARY_INPUT_CHARS]
        completion = await summary_of(excerpt, params.summary_words, None, models)
        output["summary"] = (completion.choices[0].message.content or "").strip()
        output["summary_of_beginning"] = len(excerpt) < len(document.markdown)
        usage = _add(usage, chat_usage(completion))
        model = model if model != READER else completion.model
    output["markdown"] = compose(
        document,
        output.get("description"),
        output.get("summary"),
        bool(output.get("summary_of_beginning")),
    )
    return JobResult(output=output, model=model, usage=usage)


def compose(
    document: Document, description: str | None, summary: str | None, partial: bool = False
) -> str:
    """The result as one markdown page: description, text read, summary."""
    parts = []
    if description:
        parts.append(f"## Description\n\n{description}")
    text = document.markdown if not document.empty else "*No text was found in the document.*"
    parts.append(f"## Text\n\n{text}" if description or summary else text)
    if summary:
        source = "the beginning of the text above" if partial else "the text above"
        parts.append(f"## Summary\n\n*Written by a language model from {source}.*\n\n{summary}")
    return "\n\n".join(parts)


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
    )
