from __future__ import annotations

from apps.worker.models import ModelClient, chat_usage
from jobrelay.contract import JobRecord, JobResult
from jobrelay.tasks import SummarizeParams

# Words to tokens, with room for the model to finish its sentence.
_TOKENS_PER_WORD = 2


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = SummarizeParams.model_validate(record.params)
    focus = f" Focus on {params.focus}." if params.focus else ""
    completion = await models.chat(
        {
            "messages": [
                {
                    "role": "system",
                    "content": f"Summarize the user's text in at most {params.max_words} words."
                    f"{focus} Reply with the summary only.",
                },
                {"role": "user", "content": record.input.require_text()},
            ],
            "max_tokens": params.max_words * _TOKENS_PER_WORD + 16,
            "temperature": 0.2,
        }
    )
    summary = (completion.choices[0].message.content or "").strip()
    return JobResult(
        output={"summary": summary}, model=completion.model, usage=chat_usage(completion)
    )
