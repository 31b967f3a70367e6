from __future__ import annotations

from openai.types.chat import ChatCompletion

from apps.worker.models import ModelClient, chat_usage
from jobrelay.contract import JobRecord, JobResult
from jobrelay.tasks import SummarizeParams

# Words to tokens, with room for the model to finish its sentence.
_TOKENS_PER_WORD = 2


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = SummarizeParams.model_validate(record.params)
    completion = await summary_of(
        record.input.require_text(), params.max_words, params.focus, models
    )
    summary = (completion.choices[0].message.content or "").strip()
    return JobResult(
        output={"summary": summary}, model=completion.model, usage=chat_usage(completion)
    )


async def summary_of(
    text: str, max_words: int, focus: str | None, models: ModelClient
) -> ChatCompletion:
    """The chat model's summary of `text` (also what read_document adds to a document)."""
    emphasis = f" Focus on {focus}." if focus else ""
    return await models.chat(
        {
            "messages": [
                {
                    "role": "system",
                    "content": f"Summarize the user's text in at most {max_words} words."
                    f"{emphasis} Reply with the summary only.",
                },
                {"role": "user", "content": text},
            ],
            "max_tokens": max_words * _TOKENS_PER_WORD + 16,
            "temperature": 0.2,
        }
    )
