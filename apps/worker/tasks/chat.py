"""chat: an OpenAI chat-completions body passed through to the task's model profiles."""

from __future__ import annotations

from apps.worker.model_client import ModelClient, chat_usage
from jobrelay.contract import JobRecord, JobResult
from jobrelay.task_params import ChatParams


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    # Unset fields stay unsent: the backend's defaults apply, not nulls.
    body = ChatParams.model_validate(record.params).model_dump(exclude_none=True)
    if record.input.text is not None:
        # A text input is the user's last turn, so a chat job can be as short as a question.
        body["messages"] = [*body["messages"], {"role": "user", "content": record.input.text}]
    if not body["messages"]:
        raise ValueError("chat needs messages in params, or input.text")
    completion = await models.chat(body)
    choice = completion.choices[0]
    return JobResult(
        output={
            "message": choice.message.model_dump(exclude_none=True),
            "finish_reason": choice.finish_reason,
        },
        model=completion.model,
        usage=chat_usage(completion),
    )
