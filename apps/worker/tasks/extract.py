"""extract: fields from the text as JSON that must validate against the caller's schema.

The model is asked for JSON constrained to the schema (`response_format: json_schema`, which
llama.cpp and OpenAI enforce while generating). Output that still does not validate gets a
bounded repair: the model sees its answer and the validation errors and tries again; then the
job fails with `invalid_output`. Each check runs in a child process under a CPU-time limit
(apps/worker/output_check.py), never on the event loop.
"""

from __future__ import annotations

import json
from typing import Any

from apps.worker import output_check
from apps.worker.models import ModelClient, chat_usage
from apps.worker.settings import get_settings
from jobrelay.contract import JobRecord, JobResult, Usage
from jobrelay.tasks import ExtractParams

# Repairs after the first answer. One usually fixes a missing field; more rarely help a model
# that did not get it twice.
MAX_REPAIRS = 2


class InvalidOutput(Exception):
    """The model's output never validated against the schema."""


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = ExtractParams.model_validate(record.params)
    settings = get_settings()
    guidance = f"\n{params.instructions}" if params.instructions else ""
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": "Extract information from the user's text as JSON matching this JSON "
            f"Schema. Use only what the text says.{guidance}\n"
            f"{json.dumps(params.schema_)}",
        },
        {"role": "user", "content": record.input.require_text()},
    ]
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "extraction", "schema": params.schema_},
    }
    usage = Usage(prompt_tokens=0, total_tokens=0)
    problems: list[str] = []
    for _ in range(MAX_REPAIRS + 1):
        completion = await models.chat(
            {"messages": messages, "response_format": response_format, "temperature": 0}
        )
        usage = _add(usage, chat_usage(completion))
        text = completion.choices[0].message.content or ""
        checked = await output_check.check(
            params.schema_,
            text,
            settings.output_check_cpu_seconds,
            settings.output_check_memory_bytes,
        )
        problems = checked.problems
        if not problems:
            return JobResult(output={"data": checked.data}, model=completion.model, usage=usage)
        messages += [
            {"role": "assistant", "content": text},
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
