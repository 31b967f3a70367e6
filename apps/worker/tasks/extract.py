"""extract: fields from the text as JSON that must validate against the caller's schema.

The model is asked for JSON constrained to the schema (`response_format: json_schema`, which
llama.cpp and OpenAI enforce while generating), with its plain string fields further limited
to spans of the text (apps/worker/tasks/grounding.py). Output that still does not validate
gets a bounded repair: the model sees its answer and the validation errors and tries again;
then the job fails with `invalid_output`. Each check runs in a child process under a CPU-time
limit (apps/worker/output_check.py), never on the event loop. Every value the text does not
contain is listed in `unsupported`: the answer never passes a guess off as read.
"""

from __future__ import annotations

import json
from typing import Any

from apps.worker import output_check
from apps.worker.models import ModelClient, chat_usage
from apps.worker.settings import get_settings
from apps.worker.tasks import grounding
from jobrelay.contract import JobRecord, JobResult, Usage
from jobrelay.tasks import ExtractParams

# Repairs after the first answer. One usually fixes a missing field; more rarely help a model
# that did not get it twice.
MAX_REPAIRS = 2


class InvalidOutput(Exception):
    """The model's output never validated against the schema."""


def request(
    schema: dict[str, Any], instructions: str | None, text: str, grounded: bool = True
) -> dict[str, Any]:
    """The chat-completions body that asks for `schema`'s fields from `text` (also what
    bench/chat_eval.py measures, with and without `grounded`)."""
    guidance = f"\n{instructions}" if instructions else ""
    # The caller's schema still decides validity; the spans only narrow what is generated.
    constrained = grounding.constrain(schema, text) if grounded else schema
    return {
        "messages": [
            {
                "role": "system",
                "content": "Extract information from the user's text as JSON matching this "
                f"JSON Schema. Use only what the text says.{guidance}\n{json.dumps(schema)}",
            },
            {"role": "user", "content": text},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "extraction", "schema": constrained},
        },
        "temperature": 0,
    }


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = ExtractParams.model_validate(record.params)
    settings = get_settings()
    text = record.input.require_text()
    body = request(params.schema_, params.instructions, text)
    messages: list[dict[str, Any]] = body["messages"]
    usage = Usage(prompt_tokens=0, total_tokens=0)
    problems: list[str] = []
    for _ in range(MAX_REPAIRS + 1):
        completion = await models.chat({**body, "messages": messages})
        usage = _add(usage, chat_usage(completion))
        answer = completion.choices[0].message.content or ""
        checked = await output_check.check(
            params.schema_,
            answer,
            settings.output_check_cpu_seconds,
            settings.output_check_memory_bytes,
        )
        problems = checked.problems
        if not problems:
            output = {
                "data": checked.data,
                "unsupported": grounding.unsupported(checked.data, text),
            }
            return JobResult(output=output, model=completion.model, usage=usage)
        messages += [
            {"role": "assistant", "content": answer},
            {
                "role": "user",
                "content": "That does not match the schema: "
                + "; ".join(problems)
                + ". Answer again with JSON that matches it, and nothing else.",
            },
        ]
    raise InvalidOutput(
        f"the model's output did not match the schema after {MAX_REPAIRS} repairs: "
        + "; ".join(problems)
    )


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
    )
